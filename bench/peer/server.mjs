// Benchmark peer: node-oidc-provider 9.x with one confidential client.
//
// One Node process serves both the authorization server and a tiny resource
// server route, the way a small Node deployment would:
//   POST /token                 client_credentials (client_secret_basic)
//   POST /token/introspection   introspection (opaque tokens only: the
//                               provider refuses to introspect JWTs)
//   GET  /api/whoami            protected API: verifies a JWT access token
//                               with jose and answers 200 JSON
//
// The access-token format for client credentials is chosen by the resource
// indicator: RESOURCE_OPAQUE gives opaque tokens, RESOURCE_JWT gives ES256 JWTs.
//
// Storage is the provider's default in-memory adapter: opaque tokens live in
// process memory only (a bounded LRU), nothing is written to disk.
//
// Environment:
//   PEER_PORT           port to listen on (127.0.0.1 only), default 4100
//   PEER_CLIENT_ID      client id, default "bench-peer"
//   PEER_CLIENT_SECRET  client secret (required)

import { createServer } from 'node:http';

import { exportJWK, generateKeyPair, jwtVerify } from 'jose';
import Provider, { errors } from 'oidc-provider';

const HOST = '127.0.0.1';
const PORT = Number.parseInt(process.env.PEER_PORT ?? '4100', 10);
const CLIENT_ID = process.env.PEER_CLIENT_ID ?? 'bench-peer';
const CLIENT_SECRET = process.env.PEER_CLIENT_SECRET;
const ISSUER = `http://${HOST}:${PORT}`;

const RESOURCE_OPAQUE = 'https://opaque.bench.invalid/';
const RESOURCE_JWT = 'https://jwt.bench.invalid/';
const SCOPE = 'useraccount';
const TOKEN_TTL = 15 * 60;

if (!CLIENT_SECRET) {
  console.error('PEER_CLIENT_SECRET must be set');
  process.exit(2);
}

// A fresh ES256 signing key for this run.
const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
const privateJwk = { ...(await exportJWK(privateKey)), alg: 'ES256', use: 'sig', kid: 'bench-es256' };

const resourceServers = {
  [RESOURCE_OPAQUE]: {
    scope: SCOPE,
    audience: RESOURCE_OPAQUE,
    accessTokenTTL: TOKEN_TTL,
    accessTokenFormat: 'opaque',
  },
  [RESOURCE_JWT]: {
    scope: SCOPE,
    audience: RESOURCE_JWT,
    accessTokenTTL: TOKEN_TTL,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  },
};

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: SCOPE,
    },
  ],
  clientDefaults: {
    id_token_signed_response_alg: 'ES256',
  },
  jwks: { keys: [privateJwk] },
  scopes: [SCOPE],
  cookies: { keys: [crypto.randomUUID()] },
  ttl: {
    ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? TOKEN_TTL,
  },
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE_OPAQUE,
      useGrantedResource: async () => false,
      getResourceServerInfo: async (ctx, resourceIndicator) => {
        const info = resourceServers[resourceIndicator];
        if (!info) {
          throw new errors.InvalidTarget();
        }
        return info;
      },
    },
  },
});

provider.on('server_error', (ctx, err) => {
  console.error('server_error', err);
});

const providerCallback = provider.callback();

// The resource-server route: what a Node API in front of this provider does
// with a JWT access token.
async function whoami(req, res) {
  const auth = req.headers.authorization ?? '';
  const match = /^Bearer ([^\s]+)$/i.exec(auth);
  const send = (status, body) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };
  if (!match) {
    send(401, { error: 'invalid_token' });
    return;
  }
  try {
    const { payload } = await jwtVerify(match[1], publicKey, {
      issuer: ISSUER,
      audience: RESOURCE_JWT,
      algorithms: ['ES256'],
      typ: 'at+jwt',
    });
    send(200, {
      sub: payload.sub ?? payload.client_id,
      client_id: payload.client_id,
      scope: payload.scope,
    });
  } catch {
    send(401, { error: 'invalid_token' });
  }
}

const server = createServer((req, res) => {
  if (req.method === 'GET' && (req.url === '/api/whoami' || req.url.startsWith('/api/whoami?'))) {
    whoami(req, res).catch((err) => {
      console.error('whoami failed', err);
      if (!res.headersSent) {
        res.writeHead(500);
      }
      res.end();
    });
    return;
  }
  if (req.method === 'GET' && req.url === '/healthz') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
    return;
  }
  providerCallback(req, res);
});

server.keepAliveTimeout = 65_000;
server.listen(PORT, HOST, () => {
  console.log(`peer listening on ${ISSUER} (node ${process.version}, pid ${process.pid})`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
