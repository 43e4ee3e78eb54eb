//! The end-to-end suite: real servers on 127.0.0.1, real HTTP, real client libraries, and every
//! storage-touching test on both SQLite and PostgreSQL. One binary, because every file directly
//! under `tests/` would be linked separately, and linking is the slow step.
//!
//! - `harness`: starting servers, the `server_test!` macro, and HTTP helpers;
//! - `backchannel`: back-channel logout tokens reaching a receiving server on sign-out and on an
//!   administrator's lock or deactivation (a command's before it exits), and a receiver that
//!   never answers holding up nothing;
//! - `backup`: a SQLite backup taken under load, restored on another data directory;
//! - `audience`: resource indicators, audiences on Gatehouse's APIs and routes, and who may
//!   introspect what;
//! - `client_credentials`: the grant through the Rust `oauth2` crate, introspection, revocation;
//! - `bearer`: a bearer token is presented one way, never in the query string, at every API;
//! - `dpop`: DPoP proofs at the token endpoint, bound tokens on the APIs and the gateway, nonces
//!   and bound refresh tokens, with proofs made by the test;
//! - `edges`: values spelled so that a lenient parser would read them another way;
//! - `errors`: every RFC error case of the token, introspection and revocation endpoints;
//! - `access`: scopes and REST API auth scope rules, managed and enforced;
//! - `admin_api`: the admin REST API and its authorisation;
//! - `console`: the administrators' console at `/admin`: sign-in, each role's pages and
//!   refusals, an application's life through its forms;
//! - `console_entries`: the console's forms of each kind of configuration entry, field by field;
//! - `roles`: what each registry role may change, and the last administrator;
//! - `credentials`: what a password change, a lock or a deactivation ends, and the declarative
//!   file's respect for them;
//! - `caches`: what a revocation or an unknown token costs the in-memory caches, across
//!   instances;
//! - `cli`: the `gatehouse` binary's commands, as a script would run them;
//! - `cookies`: the `__Host-` names, `Secure` and scope of the cookies under an https issuer;
//! - `apply`: the declarative registry file;
//! - `audit`: the audit trail of registry changes, and `apply` changing all of a file or nothing;
//! - `gateway`: routes to a real upstream server, their authorization and failures;
//! - `keys`: staged key rotation and the JWKS;
//! - `instances`: several instances on one database starting and racing together;
//! - `limits`: the HTTP server's own defences, over raw TCP: body, header and time limits;
//! - `lockout`: brute-force protection without an oracle or a lockout of others;
//! - `memory`: the resident set of a `gatehouse serve` process under sustained sign-ins;
//! - `ops`: discovery, health, metrics, shutdown;
//! - `rate_limit`: the request rate per client address on the endpoints that check credentials;
//! - `federation`: JWT providers, the JWT bearer grant, `private_key_jwt`, third-party tokens,
//!   against a stand-in identity provider process (`tests/idp/idp.py`);
//! - `forms`: login, consent and sign-out forms work once;
//! - `hints`: `id_token_hint` at the authorization endpoint and at sign-out;
//! - `people`: authorization endpoint, login and consent, code, refresh and password grants;
//! - `outbound`: outbound OAuth against a second Gatehouse: profiles, aliases, the proxy and
//!   `gatehouse call`;
//! - `table`: the Table API: rules, table roles, queries and concurrent changes;
//! - `token_exchange`: RFC 8693 impersonation and delegation, from own and trusted providers'
//!   tokens, every rule that keeps an exchange from widening anything;
//! - `browser`: the person flows in headless Chromium, checked by `openid-client`.

mod harness;

mod access;
mod admin_api;
mod apply;
mod audience;
mod audit;
mod backchannel;
mod backup;
mod bearer;
mod browser;
mod caches;
mod cli;
mod client_credentials;
mod console;
mod console_entries;
mod cookies;
mod credentials;
mod device;
mod dpop;
mod edges;
mod errors;
mod federation;
mod forms;
mod gateway;
mod hints;
mod instances;
mod keys;
mod limits;
mod lockout;
mod memory;
mod ops;
mod outbound;
mod people;
mod pushed;
mod rate_limit;
mod roles;
mod seed;
mod table;
mod token_exchange;
mod unavailable;
