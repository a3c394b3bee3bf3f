// Smoke test of a server with the npm `nats` client (nats.js 2.x), driven by
// tests/broker/test_npm_client.py against both nats-server and trustkit-broker.
//
// Usage: node smoke_nats.mjs <url> <good.creds> <denied.creds> <revoked.creds>
//   good:    may do anything; answers requests on "svc.echo"
//   denied:  publish denied on "secret.>"
//   revoked: revoked in its account JWT
// Prints one JSON object: what the client saw. Exits 0 unless the script itself failed.
import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, Events, StringCodec } from "nats";

const [url, goodCreds, deniedCreds, revokedCreds] = process.argv.slice(2);
const sc = StringCodec();
const opts = (creds) => ({
  servers: url,
  authenticator: credsAuthenticator(new Uint8Array(readFileSync(creds))),
  reconnect: false,
  timeout: 5000,
});

async function run() {
  const out = {};
  const responder = await connect({ ...opts(goodCreds), name: "responder" });
  responder.subscribe("svc.echo", {
    callback: (err, msg) => {
      if (!err) {
        msg.respond(sc.encode(`echo:${sc.decode(msg.data)}`));
      }
    },
  });
  await responder.flush();

  // 1. connect with creds and request-reply
  const good = await connect({ ...opts(goodCreds), name: "good" });
  out.reply = sc.decode((await good.request("svc.echo", sc.encode("hi"), { timeout: 3000 })).data);

  // 2. a denied publish: an async error status, the connection stays and still works
  const denied = await connect({ ...opts(deniedCreds), name: "denied" });
  const statuses = [];
  (async () => {
    for await (const s of denied.status()) {
      if (s.type === Events.Error) {
        statuses.push({ data: s.data, permissionContext: s.permissionContext ?? null });
      }
    }
  })();
  denied.publish("secret.plans", sc.encode("x"));
  await denied.flush();
  await new Promise((r) => setTimeout(r, 200));
  out.violations = statuses;
  out.deniedStillConnected = !denied.isClosed();
  out.replyAfterViolation = sc.decode(
    (await denied.request("svc.echo", sc.encode("again"), { timeout: 3000 })).data,
  );

  // 3. a revoked user cannot connect
  try {
    const nc = await connect(opts(revokedCreds));
    out.revoked = "connected";
    await nc.close();
  } catch (err) {
    out.revoked = err.code ?? String(err);
  }

  await denied.close();
  await good.close();
  await responder.close();
  return out;
}

run().then(
  (out) => {
    process.stdout.write(`${JSON.stringify(out)}\n`);
    process.exit(0);
  },
  (err) => {
    process.stdout.write(`${JSON.stringify({ error: String(err), code: err?.code ?? null })}\n`);
    process.exit(1);
  },
);
