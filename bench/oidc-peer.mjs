// The peer for token issuance in scripts/bench: oidc-provider with one
// client allowed the client_credentials grant, on a loopback port.
//
//   node bench/oidc-peer.mjs MODULE_DIR PORT
//
// MODULE_DIR is the folder holding node_modules/oidc-provider (scripts/bench
// installs it outside the repository). The client id and secret come from
// BENCH_CLIENT_ID and BENCH_CLIENT_SECRET, never from the command line.
import { createServer } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [moduleDir, port] = process.argv.slice(2);
const entry = join(moduleDir, "node_modules", "oidc-provider", "lib", "index.js");
const { default: Provider } = await import(pathToFileURL(entry).href);

const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [
    {
      client_id: process.env.BENCH_CLIENT_ID,
      client_secret: process.env.BENCH_CLIENT_SECRET,
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      token_endpoint_auth_method: "client_secret_basic",
    },
  ],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: false },
  },
  // Same lifetime as tollgate's default access token.
  ttl: { ClientCredentials: 3600 },
  cookies: { keys: [process.env.BENCH_CLIENT_SECRET] },
});

createServer(provider.callback()).listen(Number(port), "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
