//! The rules an outbound record follows before it is stored, and the one form in which a
//! profile's or alias' lists and URL are read.

use serde::{Deserialize, Deserializer};

use super::{ConnectionAlias, OAuthProvider, OUTBOUND_GRANTS, ProviderSpec};
use crate::Error;
use crate::client::GrantType;

pub(super) fn check_provider(provider: &OAuthProvider) -> Result<(), Error> {
    check_url("token_url", &provider.token_url)?;
    if let Some(url) = &provider.authorization_url {
        check_url("authorization_url", url)?;
    }
    if let Some(issuer) = &provider.issuer {
        check_url("issuer", issuer)?;
    }
    if provider.client_id.is_empty() {
        return Err(Error::validation("a provider needs a client_id"));
    }
    if !OUTBOUND_GRANTS.contains(&provider.grant) {
        return Err(Error::validation(format!(
            "grant {} cannot be used towards a provider (client_credentials, \
             authorization_code, password or jwt_bearer)",
            provider.grant
        )));
    }
    if provider.signs() {
        if provider.signing_key_sealed.is_none() {
            return Err(Error::validation(
                "private_key_jwt and jwt_bearer need signing_alg (ES256 or RS256)",
            ));
        }
    } else if provider.client_secret_sealed.is_none() {
        return Err(Error::validation(format!(
            "{} needs a client secret",
            provider.auth_method
        )));
    }
    match provider.grant {
        GrantType::AuthorizationCode if provider.authorization_url.is_none() => Err(
            Error::validation("the authorization_code grant needs an authorization_url"),
        ),
        // RFC 9700 §4.4.2: without the issuer, a response from another provider cannot be told
        // apart from this one's.
        GrantType::AuthorizationCode if provider.issuer.is_none() => Err(Error::validation(
            "the authorization_code grant needs the provider's issuer",
        )),
        GrantType::Password
            if provider.username.is_none() || provider.password_sealed.is_none() =>
        {
            Err(Error::validation(
                "the password grant needs a username and a password",
            ))
        }
        GrantType::JwtBearer if provider.username.is_none() => Err(Error::validation(
            "the jwt_bearer grant needs a username (the assertion's subject)",
        )),
        _ => Ok(()),
    }
}

pub(super) fn check_alias(alias: &ConnectionAlias) -> Result<(), Error> {
    check_name("alias name", &alias.name)?;
    check_url("base_url", &alias.base_url)?;
    // The proxy endpoint answers within the server's request time limit, as gateway routes
    // do, so an alias may not wait longer than a route.
    let max = crate::gateway::MAX_ROUTE_TIMEOUT_SECONDS as i64;
    if !(1..=max).contains(&alias.timeout_seconds) {
        return Err(Error::validation(format!(
            "timeout_seconds must be between 1 and {max}"
        )));
    }
    if !(0..=10).contains(&alias.max_retries) {
        return Err(Error::validation("max_retries must be between 0 and 10"));
    }
    Ok(())
}

/// A list of names read sorted and without repeats, so that the same set is the same document
/// (and the declarative file finds nothing to change).
pub(super) fn sorted_set<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let mut items = Vec::<String>::deserialize(d)?;
    items.sort();
    items.dedup();
    Ok(items)
}

/// A base URL read without its trailing `/`: paths are appended to it after one.
pub(super) fn without_trailing_slash<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(String::deserialize(d)?.trim_end_matches('/').to_owned())
}

/// Names of outbound records appear in URLs (`/api/outbound/{alias}/…`) and CLI arguments.
pub(super) fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::validation(format!(
            "{what} must be 1 to 64 letters, digits or . _ -"
        )))
    }
}

/// The first endpoint of `spec` whose origin (RFC 6454: scheme, host and port) differs from the
/// stored provider's. An endpoint added or removed moves nothing: no credential was bound to it.
pub(super) fn moved_origins(current: &OAuthProvider, spec: &ProviderSpec) -> Option<&'static str> {
    let origin = |url: Option<&str>| {
        url.and_then(|u| url::Url::parse(u).ok())
            .map(|u| u.origin())
    };
    [
        (
            "token_url",
            Some(current.token_url.as_str()),
            Some(spec.token_url.as_str()),
        ),
        (
            "authorization_url",
            current.authorization_url.as_deref(),
            spec.authorization_url.as_deref(),
        ),
    ]
    .into_iter()
    .find(|(_, before, after)| {
        before.is_some() && after.is_some() && origin(*before) != origin(*after)
    })
    .map(|(field, _, _)| field)
}

/// Credentials and tokens travel to these URLs: TLS, except to this very machine.
pub(super) fn check_url(what: &str, value: &str) -> Result<(), Error> {
    let invalid = |why: &str| Err(Error::validation(format!("{what} {value:?} {why}")));
    let Ok(url) = url::Url::parse(value) else {
        return invalid("is not an absolute URL");
    };
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return invalid("must carry neither a fragment nor credentials");
    }
    if crate::remote::is_allowed(&url) {
        Ok(())
    } else {
        invalid("must use https unless it is a loopback address")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_tls_outside_loopback() {
        assert!(check_url("u", "https://api.example/v1").is_ok());
        assert!(check_url("u", "http://127.0.0.1:9/token").is_ok());
        assert!(check_url("u", "http://api.example/v1").is_err());
        assert!(check_url("u", "https://user:pw@api.example/").is_err());
        assert!(check_url("u", "relative/path").is_err());
    }
}
