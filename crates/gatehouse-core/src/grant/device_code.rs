//! The device authorization grant's token side (RFC 8628 §3.4-3.5): the device polls with its
//! device code until the user has answered; an approval gives tokens once.

use async_trait::async_trait;

use super::{GrantContext, TokenGrant, TokenRequest, issue_for_person};
use crate::Error;
use crate::audience;
use crate::client::GrantType;
use crate::device::{DEVICE_CODE_LIFETIME, Poll};
use crate::scope::ScopeSet;
use crate::token::{GrantLink, TokenResponse};

pub struct DeviceCodeGrant;

/// A poll's error answer (RFC 8628 §3.5).
fn polled(error: &'static str, description: &str) -> Error {
    Error::AuthorizationRefused {
        error,
        description: description.to_owned(),
    }
}

#[async_trait]
impl TokenGrant for DeviceCodeGrant {
    fn grant_type(&self) -> GrantType {
        GrantType::DeviceCode
    }

    async fn exchange(
        &self,
        context: &GrantContext<'_>,
        request: &TokenRequest,
    ) -> Result<TokenResponse, Error> {
        let client = context.client;
        let device_code_hash = context
            .tokens
            .hasher()
            .hash(request.require("device_code")?);
        let invalid = |why: &str| Error::InvalidGrant(why.to_owned());
        let record = context
            .store
            .find_device_authorization(&device_code_hash)
            .await?
            .filter(|record| record.client_id == client.client_id)
            .ok_or_else(|| invalid("the device code is invalid"))?;
        let now = context.tokens.clock().now();
        // A device code issued before everything of its application was revoked went with it.
        if client.revoked_since(record.expires_at - DEVICE_CODE_LIFETIME) {
            return Err(polled("expired_token", "the device code expired"));
        }
        match Poll::of(&record, now) {
            Poll::Pending { interval } => {
                context
                    .store
                    .record_device_poll(&device_code_hash, now, interval)
                    .await?;
                Err(polled(
                    "authorization_pending",
                    "the user has not answered yet",
                ))
            }
            Poll::SlowDown { interval } => {
                context
                    .store
                    .record_device_poll(&device_code_hash, now, interval)
                    .await?;
                Err(polled(
                    "slow_down",
                    "polling too fast: wait the interval, which grew by 5 seconds",
                ))
            }
            Poll::Denied => Err(polled("access_denied", "the user denied access")),
            Poll::Expired => Err(polled("expired_token", "the device code expired")),
            Poll::Redeemed => Err(invalid("the device code was used already")),
            Poll::Approved => {
                if !context
                    .store
                    .redeem_device_authorization(&device_code_hash)
                    .await?
                {
                    return Err(invalid("the device code was used already"));
                }
                let user = match &record.user_id {
                    Some(user_id) => context.tokens.user(user_id).await?,
                    None => None,
                }
                .filter(|u| u.can_authenticate())
                .ok_or_else(|| invalid("the user is no longer active"))?;
                let scope = ScopeSet::parse(&record.scope)?;
                let granted = context.tokens.stored_audience(&record.audience);
                let audience = audience::narrow(&granted, request.resources())?;
                let grant_id = uuid::Uuid::new_v4().to_string();
                let link = GrantLink {
                    grant_id: &grant_id,
                    auth_time: record.auth_time.unwrap_or(now),
                    nonce: None,
                    // The device is no part of the browser session the user approved it in.
                    sid: None,
                };
                issue_for_person(context, &user, &scope, &granted, &audience, link).await
            }
        }
    }
}
