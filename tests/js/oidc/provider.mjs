// A real OpenID provider (npm oidc-provider) standing in for Okta in the callout's OIDC tests.
//
// Started by tests/callout/oidc_fixture.py. See ../../../../shared/reference/real-components-oidc.md.
//
// Environment:
//   OIDC_KEYS_FILE   JSON {"keys": [private JWKs with kid]}; the first key matching an alg signs
//   OIDC_USERS_FILE  JSON {"<username>": {claims...}}; every claim of a user goes into its tokens
//   PORT             listen on this loopback port (a restart keeps the issuer); default: a free one
//   OIDC_TTL         default access-token lifetime in seconds (600)
//
// stdout carries exactly one line, once listening:
//   {"ready":true,"issuer":"http://127.0.0.1:<port>","port":<port>,"kids":[...]}
// Everything else (the provider's own warnings) goes to stderr. SIGTERM stops it.
//
// Tokens: POST /token with HTTP Basic test-client:test-secret and
//   grant_type=urn:test:user-token  username=<user>  [rs=<resource>] [ttl=<seconds>] [overrides=<json>]
// answers {access_token, token_type, expires_in}. The access token is a JWT signed by the provider
// for the resource server `rs`:
//   urn:nats     aud "nats", RS256 (the default)     urn:nats-es  aud "nats", ES256
//   urn:nats-ps  aud "nats", PS256                   urn:other    aud "other", RS256
// `overrides` ({"set": {claim: value}, "unset": [claim]}) edits the payload just before the provider
// signs it (its own formats.customizers.jwt hook): a genuinely signed token with, say, another
// `iss` or a future `nbf`. grant_type=client_credentials works too (sub = the client id).
import { readFileSync } from 'node:fs';
import http from 'node:http';
import Provider, { errors } from 'oidc-provider';

const keys = JSON.parse(readFileSync(process.env.OIDC_KEYS_FILE, 'utf8')).keys;
const USERS = JSON.parse(readFileSync(process.env.OIDC_USERS_FILE, 'utf8'));
const TTL = parseInt(process.env.OIDC_TTL || '600', 10);
const GRANT = 'urn:test:user-token';
const SERVICE_CLAIMS = { groups: ['svc-nats'], email: 'svc@example.test' };

const RESOURCES = {
  'urn:nats': { audience: 'nats', alg: 'RS256' },
  'urn:nats-es': { audience: 'nats', alg: 'ES256' },
  'urn:nats-ps': { audience: 'nats', alg: 'PS256' },
  'urn:other': { audience: 'other', alg: 'RS256' },
};

function rsInfo(indicator, ttl = TTL) {
  const r = RESOURCES[indicator];
  if (!r) throw new errors.InvalidTarget();
  return {
    scope: 'nats:pub nats:sub',
    audience: r.audience,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: r.alg } },
  };
}

const server = http.createServer();
server.listen(parseInt(process.env.PORT || '0', 10), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [{
      client_id: 'test-client',
      client_secret: 'test-secret',
      grant_types: ['client_credentials', GRANT],
      response_types: [],
      redirect_uris: [],
    }],
    jwks: { keys },
    findAccount: async (ctx, id) => USERS[id] && {
      accountId: id,
      claims: async () => ({ sub: id, ...USERS[id] }),
    },
    claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups', 'nats'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => 'urn:nats',
        useGrantedResource: async () => true,
        getResourceServerInfo: async (ctx, indicator) => rsInfo(indicator),
      },
    },
    extraTokenClaims: async (ctx, token) => (token.accountId ? { ...USERS[token.accountId] } : SERVICE_CLAIMS),
    formats: {
      customizers: {
        jwt: async (ctx, token, jwt) => {
          const raw = ctx?.oidc?.params?.overrides;
          if (!raw) return;
          const o = JSON.parse(raw);
          Object.assign(jwt.payload, o.set || {});
          for (const claim of o.unset || []) delete jwt.payload[claim];
        },
      },
    },
    ttl: { AccessToken: TTL, ClientCredentials: TTL },
  });

  provider.registerGrantType(GRANT, async (ctx) => {
    const { username, rs = 'urn:nats', ttl, scope = 'nats' } = ctx.oidc.params;
    if (!USERS[username]) throw new errors.InvalidGrant('unknown user');
    const lifetime = ttl ? parseInt(ttl, 10) : TTL;
    const at = new provider.AccessToken({
      accountId: username,
      client: ctx.oidc.client,
      gty: GRANT,
      scope,
      expiresIn: lifetime,
    });
    at.resourceServer = new provider.ResourceServer(rs, rsInfo(rs, lifetime));
    const value = await at.save();
    ctx.body = { access_token: value, token_type: 'Bearer', expires_in: at.expiration };
  }, ['username', 'rs', 'ttl', 'scope', 'overrides']);

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port, kids: keys.map((k) => k.kid) })}\n`);
});

process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
});
