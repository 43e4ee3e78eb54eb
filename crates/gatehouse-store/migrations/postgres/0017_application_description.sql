-- What an application is for, in the administrators' words: free text, optional.
ALTER TABLE clients ADD COLUMN description TEXT;
