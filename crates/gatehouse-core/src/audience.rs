//! Audiences: whom a token is for (RFC 8707, RFC 9068 §4, RFC 9700 §2.3).
//!
//! An application that is a resource server registers audience identifiers. A token request
//! may name some of them as `resource`; the token's `aud` is then exactly those, and only those
//! resource servers accept it. A request without `resource` gets a token for this server's
//! issuer, which is what Gatehouse's own APIs accept. Whether a registered audience exists is
//! decided by `TokenService::audience_for`; the rules here need no lookup.

use crate::Error;
use crate::client::Client;

/// The longest audience identifier accepted.
pub const MAX_AUDIENCE_LENGTH: usize = 512;

/// RFC 8707 §2: a resource (and so an audience identifier) is an absolute URI without a
/// fragment. Whitespace never occurs in a URI; refusing it keeps identifiers unambiguous in
/// logs and in space-separated lists.
pub fn is_valid_identifier(value: &str) -> bool {
    value.len() <= MAX_AUDIENCE_LENGTH
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && url::Url::parse(value).is_ok_and(|url| url.fragment().is_none())
}

/// Checks the audience identifiers an administrator registers for an application.
pub fn check_identifiers(audiences: &[String]) -> Result<(), Error> {
    match audiences.iter().find(|a| !is_valid_identifier(a)) {
        Some(bad) => Err(Error::validation(format!(
            "audience {bad:?} must be an absolute URI without a fragment, at most \
             {MAX_AUDIENCE_LENGTH} characters"
        ))),
        None => Ok(()),
    }
}

/// The `resource` values of a request, checked for form and without repeats (order kept).
pub fn requested(resources: &[String]) -> Result<Vec<String>, Error> {
    let mut unique: Vec<String> = Vec::with_capacity(resources.len());
    for resource in resources {
        if !is_valid_identifier(resource) {
            return Err(Error::InvalidTarget(
                "a resource is not an absolute URI without a fragment".into(),
            ));
        }
        if !unique.contains(resource) {
            unique.push(resource.clone());
        }
    }
    Ok(unique)
}

/// RFC 8707 §2.2: a token request within an earlier grant (a code, a refresh token) may name
/// fewer resources than the grant, never others. Without `resource` it gets the whole grant.
pub fn narrow(granted: &[String], resources: &[String]) -> Result<Vec<String>, Error> {
    let requested = requested(resources)?;
    if requested.is_empty() {
        return Ok(granted.to_vec());
    }
    if requested.iter().all(|r| granted.contains(r)) {
        Ok(requested)
    } else {
        Err(Error::InvalidTarget(
            "a resource was not part of the original grant".into(),
        ))
    }
}

/// Whether `client` holds a token: it was issued to the client, or it is for a resource server
/// the client is. The issuer stands for Gatehouse's own APIs: an application that registered it
/// as an audience of its own does not thereby hold every token for Gatehouse.
pub fn holds(
    client: &Client,
    issuer: &str,
    token_client_id: &str,
    token_audience: &[String],
) -> bool {
    client.client_id == token_client_id
        || client
            .audiences
            .iter()
            .any(|own| own != issuer && token_audience.contains(own))
}

/// RFC 7662 §4: who may learn about a token — a client that [`holds`] it, or an application an
/// administrator allowed to introspect every token.
pub fn may_introspect(
    caller: &Client,
    issuer: &str,
    token_client_id: &str,
    token_audience: &[String],
) -> bool {
    caller.introspect_any || holds(caller, issuer, token_client_id, token_audience)
}

/// RFC 8693 §2.1: the audience of a token exchange's new token. Without `resource` or
/// `audience`, the subject token's (`held`): the exchange changes who acts or the scope, not
/// where the token goes. Named targets must be among the client's `exchange_audiences`, else
/// `invalid_target`; whether they are registered is `TokenService::audience_for`'s to say.
pub fn exchange_targets(
    client: &Client,
    held: &[String],
    targets: &[String],
) -> Result<Vec<String>, Error> {
    let requested = requested(targets)?;
    if requested.is_empty() {
        return Ok(held.to_vec());
    }
    match requested
        .iter()
        .find(|t| !client.exchange_audiences.contains(t))
    {
        Some(_) => Err(Error::InvalidTarget(
            "this client may not exchange tokens for a requested audience".into(),
        )),
        None => Ok(requested),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    #[test]
    fn identifiers_are_absolute_uris_without_fragments() {
        assert!(is_valid_identifier("https://api.example.com"));
        assert!(is_valid_identifier("https://api.example.com/v1"));
        assert!(is_valid_identifier("urn:example:inventory"));
        assert!(!is_valid_identifier("api.example.com"));
        assert!(!is_valid_identifier("/relative"));
        assert!(!is_valid_identifier("https://api.example.com/#x"));
        assert!(!is_valid_identifier("https://api.example.com/#"));
        assert!(!is_valid_identifier("https://api.example.com/a b"));
        assert!(!is_valid_identifier(""));
        assert!(!is_valid_identifier(&format!(
            "https://a.example/{}",
            "x".repeat(MAX_AUDIENCE_LENGTH)
        )));
    }

    #[test]
    fn exchanges_keep_the_audience_or_name_a_permitted_one() {
        let mut client = Client::new("1".into(), "gateway".into(), 0);
        client.exchange_audiences = list(&["https://a.example", "https://b.example"]);
        let held = list(&["https://held.example"]);
        assert_eq!(exchange_targets(&client, &held, &[]).unwrap(), held);
        assert_eq!(
            exchange_targets(&client, &held, &list(&["https://b.example"])).unwrap(),
            list(&["https://b.example"])
        );
        for refused in [
            &["https://c.example"][..],
            &["https://a.example", "https://held.example"][..],
            &["not a uri"][..],
        ] {
            assert!(
                matches!(
                    exchange_targets(&client, &held, &list(refused)),
                    Err(Error::InvalidTarget(_))
                ),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn a_client_holds_its_own_tokens_and_those_for_its_audiences() {
        let issuer = "https://gatehouse.example";
        let mut client = Client::new("1".into(), "inventory".into(), 0);
        client.audiences = list(&["https://inventory.example", issuer]);
        assert!(holds(&client, issuer, "inventory", &list(&[issuer])));
        assert!(holds(
            &client,
            issuer,
            "crm",
            &list(&["https://inventory.example"])
        ));
        assert!(!holds(&client, issuer, "crm", &list(&[issuer])));
        assert!(!may_introspect(&client, issuer, "crm", &list(&[issuer])));
        client.introspect_any = true;
        assert!(may_introspect(&client, issuer, "crm", &list(&[issuer])));
        assert!(!holds(&client, issuer, "crm", &list(&[issuer])));
    }

    #[test]
    fn requests_narrow_their_grant() {
        let granted = list(&["https://a.example", "https://b.example"]);
        assert_eq!(narrow(&granted, &[]).unwrap(), granted);
        assert_eq!(
            narrow(&granted, &list(&["https://b.example", "https://b.example"])).unwrap(),
            list(&["https://b.example"])
        );
        assert!(matches!(
            narrow(&granted, &list(&["https://c.example"])),
            Err(Error::InvalidTarget(_))
        ));
        assert!(matches!(
            narrow(&granted, &list(&["not a uri"])),
            Err(Error::InvalidTarget(_))
        ));
    }
}
