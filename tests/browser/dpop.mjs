// DPoP (RFC 9449) with openid-client's own key handling, against a Gatehouse that requires
// server nonces (no browser needed):
//
//   1. discovery announces dpop_signing_alg_values_supported;
//   2. the client-credentials grant with a DPoP handle: the first proof has no nonce, the
//      server answers use_dpop_nonce with a DPoP-Nonce header, and the library retries with
//      it; the token is typed DPoP and its cnf.jkt is the thumbprint of the library's key;
//   3. UserInfo and the admin API's whoami with the bound token: the library signs a proof
//      with ath and the nonce it keeps for the origin, which the APIs accept as well;
//   4. the same token without the handle, or with another key's, is refused with a DPoP
//      challenge (invalid_token);
//   5. introspection says token_type DPoP and cnf.jkt;
//   6. a public client's password grant with DPoP gets a bound refresh token, which another
//      key cannot use (invalid_grant), nor a request without a proof (invalid_dpop_proof),
//      and which the library's own key refreshes.
//
// Inputs (environment):
//   GATEHOUSE_ISSUER                  the issuer, e.g. http://127.0.0.1:8080
//   GATEHOUSE_SERVICE_CLIENT_ID       confidential client: client_credentials with openid,
//   GATEHOUSE_SERVICE_CLIENT_SECRET   running as a user
//   GATEHOUSE_PUBLIC_CLIENT_ID        public client: password + refresh_token
//   GATEHOUSE_USERNAME, GATEHOUSE_PASSWORD
//
// Prints a JSON summary on stdout; exits 1 with the failed step on stderr otherwise.

import * as jose from 'jose';
import * as client from 'openid-client';

function env(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set`);
  }
  return value;
}

class CheckFailed extends Error {}

let step = 'start';
const passed = [];

function check(condition, what, detail) {
  if (!condition) {
    const suffix = detail === undefined ? '' : `: ${JSON.stringify(detail)}`;
    throw new CheckFailed(`${what}${suffix}`);
  }
  passed.push(`${step}: ${what}`);
}

/** The error a call failed with, or undefined when it succeeded. */
async function refused(call) {
  try {
    await call();
    return undefined;
  } catch (error) {
    return error;
  }
}

/** The parameters of the DPoP challenge of a refusal, if it had one. */
function dpopChallenge(error) {
  const challenges = Array.isArray(error?.cause) ? error.cause : [];
  return challenges.find((c) => c.scheme === 'dpop')?.parameters;
}

function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
}

async function thumbprint(keyPair) {
  return jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey), 'sha256');
}

// Every answer the library got: the nonce challenges it answered by itself show here.
const answers = [];

async function recordingFetch(url, options) {
  const response = await fetch(url, options);
  answers.push({
    path: new URL(url).pathname,
    status: response.status,
    nonce: response.headers.has('dpop-nonce'),
    challenge: response.headers.get('www-authenticate'),
    error: response.status === 400 ? (await response.clone().json()).error : undefined,
  });
  return response;
}

async function main() {
  const issuer = new URL(env('GATEHOUSE_ISSUER'));
  const summary = { issuer: issuer.href };
  const insecure = {
    execute: [client.allowInsecureRequests],
    [client.customFetch]: recordingFetch,
  };

  step = 'discovery';
  const service = await client.discovery(issuer, env('GATEHOUSE_SERVICE_CLIENT_ID'),
    env('GATEHOUSE_SERVICE_CLIENT_SECRET'), client.ClientSecretBasic(), insecure);
  const algs = service.serverMetadata().dpop_signing_alg_values_supported ?? [];
  check(algs.includes('ES256') && !algs.includes('none'),
    'discovery announces the DPoP algorithms', algs);

  step = 'client credentials with DPoP';
  const keyPair = await client.randomDPoPKeyPair('ES256');
  const dpop = client.getDPoPHandle(service, keyPair);
  const tokens = await client.clientCredentialsGrant(service, { scope: 'openid useraccount' },
    { DPoP: dpop });
  check(tokens.token_type === 'dpop', 'the token is typed DPoP', tokens.token_type);
  const jkt = await thumbprint(keyPair);
  check(claims(tokens.access_token).cnf?.jkt === jkt,
    "the JWT's cnf.jkt is the thumbprint of the library's key");
  const challenged = answers.filter((a) => a.path === '/oauth/token');
  check(challenged.length === 2 && challenged[0].error === 'use_dpop_nonce'
    && challenged[0].nonce && challenged[1].status === 200,
    'the first proof met use_dpop_nonce with a DPoP-Nonce, and the retry carried it', challenged);

  step = 'bound token at the APIs';
  const userinfo = await client.fetchUserInfo(service, tokens.access_token,
    client.skipSubjectCheck, { DPoP: dpop });
  check(typeof userinfo.sub === 'string', 'UserInfo answers with the proof', userinfo);
  const atUserinfo = answers.filter((a) => a.path === '/oauth/userinfo');
  check(atUserinfo.length === 1 && atUserinfo[0].status === 200,
    "the token endpoint's nonce served UserInfo at once (one origin, one server's nonces)",
    atUserinfo);
  const whoami = await client.fetchProtectedResource(service, tokens.access_token,
    new URL('/api/admin/v1/whoami', issuer), 'GET', null, undefined, { DPoP: dpop });
  check(whoami.status === 200, 'the admin API answers with the proof', whoami.status);
  const me = await whoami.json();
  check(me.client_id === service.clientMetadata().client_id, 'whoami names the client', me);

  const asBearer = await refused(() => client.fetchUserInfo(service, tokens.access_token,
    client.skipSubjectCheck));
  check(dpopChallenge(asBearer)?.error === 'invalid_token',
    'the bound token as a bearer token gets a DPoP invalid_token challenge', asBearer?.message);
  const otherKey = client.getDPoPHandle(service, await client.randomDPoPKeyPair('ES256'));
  const withOtherKey = await refused(() => client.fetchUserInfo(service, tokens.access_token,
    client.skipSubjectCheck, { DPoP: otherKey }));
  check(dpopChallenge(withOtherKey)?.error === 'invalid_token',
    "another key's proof gets a DPoP invalid_token challenge", withOtherKey?.message);

  step = 'introspection';
  const introspection = await client.tokenIntrospection(service, tokens.access_token);
  check(introspection.active === true && introspection.token_type === 'DPoP'
    && introspection.cnf?.jkt === jkt, 'introspection tells the binding', introspection);

  step = 'public client refresh with DPoP';
  const people = await client.discovery(issuer, env('GATEHOUSE_PUBLIC_CLIENT_ID'), undefined,
    client.None(), insecure);
  const personKey = client.getDPoPHandle(people, await client.randomDPoPKeyPair('ES256'));
  const signedIn = await client.genericGrantRequest(people, 'password', {
    username: env('GATEHOUSE_USERNAME'),
    password: env('GATEHOUSE_PASSWORD'),
    scope: 'openid',
  }, { DPoP: personKey });
  check(signedIn.token_type === 'dpop' && typeof signedIn.refresh_token === 'string',
    'the password grant gives a bound access token and a refresh token');
  const stolen = client.getDPoPHandle(people, await client.randomDPoPKeyPair('ES256'));
  const byOther = await refused(() => client.refreshTokenGrant(people, signedIn.refresh_token,
    undefined, { DPoP: stolen }));
  check(byOther?.error === 'invalid_grant', 'another key cannot refresh', byOther?.message);
  const unproven = await refused(() => client.refreshTokenGrant(people,
    signedIn.refresh_token));
  check(unproven?.error === 'invalid_dpop_proof', 'a refresh without a proof is refused',
    unproven?.message);
  const refreshed = await client.refreshTokenGrant(people, signedIn.refresh_token, undefined,
    { DPoP: personKey });
  check(refreshed.token_type === 'dpop' && refreshed.refresh_token !== signedIn.refresh_token,
    'its own key refreshes, and the token rotates');

  summary.checks = passed.length;
  summary.passed = passed;
  return summary;
}

main().then(
  (summary) => {
    process.stdout.write(`${JSON.stringify({ ok: true, ...summary }, null, 2)}\n`);
  },
  (error) => {
    const reason = error instanceof CheckFailed ? error.message : (error?.stack ?? String(error));
    const details = {};
    for (const key of ['error', 'error_description', 'status', 'code']) {
      if (error?.[key] !== undefined) details[key] = error[key];
    }
    process.stderr.write(`DPoP flow failed at step "${step}": ${reason}\n`);
    if (Object.keys(details).length) process.stderr.write(`${JSON.stringify(details)}\n`);
    process.stdout.write(`${JSON.stringify({ ok: false, step, passed }, null, 2)}\n`);
    process.exitCode = 1;
  },
);
