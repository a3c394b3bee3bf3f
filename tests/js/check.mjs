// JS reference checker for trustkit's interop tests.
//
// Drives the official NATS JS libraries (@nats-io/jwt 0.0.11, @nats-io/nkeys 2.0.3) through their
// public APIs only. Protocol: one JSON request per line on stdin, one JSON response per line on
// stdout, in request order. A failing request answers {"error": "<message>"} and the process keeps
// serving. If a request carries "id", the response echoes it. See tests/interop/jscheck.py.
//
// Ops (all binary data is standard base64 with padding):
//   {"op":"ping"}                                   -> {"ok":true,"versions":{...}}
//   {"op":"decode","token":"..."}                   -> {"claims":{...},"header":{...},"verified":true,
//                                                       "sig_canonical":bool}
//   {"op":"encode","kind":K,"seed":"S...",...}      -> {"token":"..."}           (see encodeToken)
//   {"op":"nkey","seed":"S...","sign_b64"?:"..."}   -> {"public","seed"[,"sig_b64"]}
//   {"op":"nkey_create","type":"user|account|operator|server|cluster"} -> {"public","seed"}
//   {"op":"verify","public","data_b64","sig_b64"}   -> {"ok":bool}
//   {"op":"xkey_create"}                            -> {"seed","public"}
//   {"op":"xkey_public","seed":"SX..."}             -> {"public":"X..."}
//   {"op":"xkey_seal","seed","recipient","data_b64","nonce_b64"?} -> {"sealed_b64"}
//   {"op":"xkey_open","seed","sender","sealed_b64"} -> {"data_b64"}
import { createInterface } from "node:readline";
import jwtlib from "@nats-io/jwt";
import nkeyslib from "@nats-io/nkeys";

const {
  Algorithms,
  Base64UrlCodec,
  decode,
  encode,
  encodeAccount,
  encodeActivation,
  encodeAuthorizationResponse,
  encodeGeneric,
  encodeOperator,
  encodeUser,
} = jwtlib;
const {
  createAccount,
  createCluster,
  createCurve,
  createOperator,
  createServer,
  createUser,
  fromCurveSeed,
  fromPublic,
  fromSeed,
} = nkeyslib;

const te = new TextEncoder();
const td = new TextDecoder();

const b64 = (bytes) => Buffer.from(bytes).toString("base64");

function unb64(s, what) {
  if (typeof s !== "string") {
    throw new Error(`${what}: expected a base64 string`);
  }
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) {
    throw new Error(`${what}: not standard base64`);
  }
  return new Uint8Array(Buffer.from(s, "base64"));
}

function str(req, field) {
  const v = req[field];
  if (typeof v !== "string" || v === "") {
    throw new Error(`missing string field "${field}"`);
  }
  return v;
}

const seedKP = (seed) => fromSeed(te.encode(seed));
const curveKP = (seed) => fromCurveSeed(te.encode(seed));

// ---------------------------------------------------------------------------------------------
// decode: the library's decode() verifies the signature with the key in "iss" (over
// "header.payload" for alg ed25519-nkey, over the payload chunk only for alg ed25519/v1). We also
// verify explicitly over the exact "header.payload" bytes, so v1 tokens are reported as failures.
function opDecode(req) {
  const token = str(req, "token");
  const claims = decode(token); // throws "sig verification failed" etc.
  const chunks = token.split(".");
  const header = JSON.parse(Base64UrlCodec.decode(chunks[0]));
  if (typeof claims.iss !== "string") {
    throw new Error("missing iss");
  }
  const sig = Base64UrlCodec.decode(chunks[2], true);
  const ok = fromPublic(claims.iss).verify(te.encode(`${chunks[0]}.${chunks[1]}`), sig);
  if (!ok) {
    throw new Error("explicit verification over header.payload failed");
  }
  return {
    claims,
    header,
    verified: true,
    sig_canonical: Base64UrlCodec.encode(sig) === chunks[2],
  };
}

// ---------------------------------------------------------------------------------------------
// encode. Common fields:
//   seed   - seed of the key that signs the token.
//   name   - claim "name".
//   sub    - subject (public key or seed). Default for operator/account/generic: the seed's key.
//   issuer - optional identity public key the token is issued on behalf of when "seed" is a
//            signing key: user/activation/authorization_response get nats.issuer_account=issuer
//            (library behaviour). For operator/account, a sub differing from the seed's public key
//            makes the seed the library's opts.signer instead.
//   nats   - the kind-specific object (the library mutates it: adds type/version, user defaults).
//   opts   - library EncodingOptions passthrough: exp, nbf, aud, scopedUser, algorithm.
//   iat    - optional fixed issued-at (unix seconds): Date.now is pinned while the library encodes,
//            so the output is fully deterministic (jti is a hash, ed25519 is deterministic).
// Kinds:
//   operator              encodeOperator(name, sub, nats, opts)
//   account               encodeAccount(name, sub, nats, opts)
//   user                  encodeUser(name, sub, issuer, nats, opts)          sub required (U)
//   activation            encodeActivation(name, sub, issuer, nats.kind, nats, opts)  sub required
//   authorization_response encodeAuthorizationResponse(sub, aud, issuer, nats, opts)
//                          sub = user nkey (U), aud = server id (N) from "aud" or opts.aud
//   generic               encodeGeneric(name, sub, type, nats, opts)  type = req.type (default
//                          "generic"); the library always writes nats.type
//   authorization_request the JS library has no encoder for it: the claim is built here
//                          ({exp,nbf,aud,name,sub,nats} like the library's encoders) and passed to
//                          the library's low-level encode(); aud defaults to
//                          "nats-authorization-request", nats.type to "authorization_request"
//   raw                   library encode(algorithm, req.claims, key): sets iss, iat,
//                          nats.version=2 (v2) and jti; everything else is taken as given
async function encodeToken(req) {
  const kind = str(req, "kind");
  const seed = str(req, "seed");
  const signer = seedKP(seed);
  const signerPub = signer.getPublicKey();
  const name = typeof req.name === "string" ? req.name : "";
  const nats = req.nats && typeof req.nats === "object" ? req.nats : {};
  const opts = req.opts && typeof req.opts === "object" ? { ...req.opts } : {};
  const sub = typeof req.sub === "string" && req.sub !== "" ? req.sub : undefined;
  const issuer = typeof req.issuer === "string" && req.issuer !== "" ? req.issuer : undefined;

  // user-like kinds: issuer identity + optional signing key
  const issuerAndOpts = () => {
    if (issuer && issuer !== signerPub) {
      return [issuer, { ...opts, signer }];
    }
    return [signer, opts];
  };
  // self-describing kinds: the subject is the identity; a different signer goes into opts.signer
  const subjectAndOpts = () => {
    if (sub && sub !== signerPub) {
      return [sub, { ...opts, signer }];
    }
    return [signer, opts];
  };

  switch (kind) {
    case "operator": {
      const [s, o] = subjectAndOpts();
      return encodeOperator(name, s, nats, o);
    }
    case "account": {
      const [s, o] = subjectAndOpts();
      return encodeAccount(name, s, nats, o);
    }
    case "user": {
      const [i, o] = issuerAndOpts();
      return encodeUser(name, str(req, "sub"), i, nats, o);
    }
    case "activation": {
      const [i, o] = issuerAndOpts();
      const exportKind = nats.kind;
      if (exportKind !== "stream" && exportKind !== "service") {
        throw new Error('activation needs nats.kind "stream" or "service"');
      }
      return encodeActivation(name, str(req, "sub"), i, exportKind, nats, o);
    }
    case "authorization_response": {
      const [i, o] = issuerAndOpts();
      const aud = req.aud ?? opts.aud;
      if (typeof aud !== "string" || aud === "") {
        throw new Error("authorization_response needs aud (the server id, an N key)");
      }
      return encodeAuthorizationResponse(str(req, "sub"), aud, i, nats, o);
    }
    case "generic": {
      const [s, o] = subjectAndOpts();
      const type = typeof req.type === "string" ? req.type : "generic";
      return encodeGeneric(name, s, type, nats, o);
    }
    case "authorization_request": {
      const claim = { exp: opts.exp, nbf: opts.nbf, aud: opts.aud ?? "nats-authorization-request" };
      if (name) {
        claim.name = name;
      }
      claim.sub = sub ?? signerPub;
      claim.nats = nats;
      nats.type = nats.type ?? "authorization_request";
      return encode(opts.algorithm ?? Algorithms.v2, claim, signer);
    }
    case "raw": {
      if (!req.claims || typeof req.claims !== "object") {
        throw new Error("raw needs a claims object");
      }
      const claim = req.claims;
      claim.nats = claim.nats ?? {};
      return encode(opts.algorithm ?? Algorithms.v2, claim, signer);
    }
    default:
      throw new Error(`unknown encode kind "${kind}"`);
  }
}

async function opEncode(req) {
  let token;
  if (req.iat !== undefined && req.iat !== null) {
    if (!Number.isInteger(req.iat)) {
      throw new Error("iat must be an integer");
    }
    const realNow = Date.now;
    Date.now = () => req.iat * 1000;
    try {
      // the library reads Date.now synchronously before its first await
      const p = encodeToken(req);
      Date.now = realNow;
      token = await p;
    } finally {
      Date.now = realNow;
    }
  } else {
    token = await encodeToken(req);
  }
  return { token };
}

// ---------------------------------------------------------------------------------------------
function opNkey(req) {
  const kp = seedKP(str(req, "seed"));
  const out = { public: kp.getPublicKey(), seed: td.decode(kp.getSeed()) };
  if (req.sign_b64 !== undefined) {
    out.sig_b64 = b64(kp.sign(unb64(req.sign_b64, "sign_b64")));
  }
  return out;
}

const creators = {
  user: createUser,
  account: createAccount,
  operator: createOperator,
  server: createServer,
  cluster: createCluster,
};

function opNkeyCreate(req) {
  const create = creators[req.type ?? "user"];
  if (!create) {
    throw new Error(`unknown nkey type "${req.type}"`);
  }
  const kp = create();
  return { public: kp.getPublicKey(), seed: td.decode(kp.getSeed()) };
}

function opVerify(req) {
  const kp = fromPublic(str(req, "public"));
  const ok = kp.verify(unb64(req.data_b64 ?? "", "data_b64"), unb64(req.sig_b64, "sig_b64"));
  return { ok: ok === true };
}

function opXkeyCreate() {
  const kp = createCurve();
  return { seed: td.decode(kp.getSeed()), public: kp.getPublicKey() };
}

function opXkeyPublic(req) {
  return { public: curveKP(str(req, "seed")).getPublicKey() };
}

function opXkeySeal(req) {
  const kp = curveKP(str(req, "seed"));
  const data = unb64(req.data_b64 ?? "", "data_b64");
  const nonce = req.nonce_b64 !== undefined ? unb64(req.nonce_b64, "nonce_b64") : undefined;
  if (nonce !== undefined && nonce.length !== 24) {
    throw new Error("nonce must be 24 bytes");
  }
  return { sealed_b64: b64(kp.seal(data, str(req, "recipient"), nonce)) };
}

function opXkeyOpen(req) {
  const kp = curveKP(str(req, "seed"));
  const out = kp.open(unb64(req.sealed_b64, "sealed_b64"), str(req, "sender"));
  if (out === null || out === undefined) {
    throw new Error("could not decrypt input");
  }
  return { data_b64: b64(out) };
}

const ops = {
  ping: () => ({ ok: true, versions: { node: process.versions.node } }),
  decode: opDecode,
  encode: opEncode,
  nkey: opNkey,
  nkey_create: opNkeyCreate,
  verify: opVerify,
  xkey_create: opXkeyCreate,
  xkey_public: opXkeyPublic,
  xkey_seal: opXkeySeal,
  xkey_open: opXkeyOpen,
};

function errMessage(e) {
  if (e instanceof Error) {
    const cause = e.cause instanceof Error ? ` (${e.cause.message})` : "";
    return `${e.message}${cause}`;
  }
  return String(e);
}

async function handle(line) {
  let req;
  try {
    req = JSON.parse(line);
  } catch (e) {
    return { error: `bad request json: ${errMessage(e)}` };
  }
  const id = req && typeof req === "object" && "id" in req ? { id: req.id } : {};
  try {
    if (!req || typeof req !== "object" || Array.isArray(req)) {
      throw new Error("request must be a JSON object");
    }
    const fn = ops[req.op];
    if (!fn) {
      throw new Error(`unknown op "${req.op}"`);
    }
    return { ...(await fn(req)), ...id };
  } catch (e) {
    return { error: errMessage(e), ...id };
  }
}

// Requests are served strictly one at a time, in order.
let chain = Promise.resolve();
const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() === "") {
    return;
  }
  chain = chain.then(async () => {
    const resp = await handle(line);
    process.stdout.write(`${JSON.stringify(resp)}\n`);
  });
});
rl.on("close", () => {
  chain.then(() => process.exit(0));
});
