// The peer for token issuance in scripts/bench: oidc-provider with one
// client allowed the client_credentials grant, on a loopback port.
//
//   node bench/oidc-peer.mjs MODULE_DIR PORT [REDIS_PORT]
//
// MODULE_DIR is the folder holding node_modules/oidc-provider and
// node_modules/ioredis (scripts/bench installs them outside the repository).
// The client id and secret come from BENCH_CLIENT_ID and
// BENCH_CLIENT_SECRET, never from the command line.
//
// With REDIS_PORT, tokens are stored in that Redis on loopback, each under
// its own key with its lifetime as TTL, the way tollgate stores its own.
// Without it, oidc-provider keeps them in its built-in memory adapter, a
// least-recently-used map of 1,000 entries meant for development: at a few
// thousand tokens a second, a token is forgotten within a second of being
// issued.
import { createServer } from "node:http";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [moduleDir, port, redisPort] = process.argv.slice(2);
const load = async (name, file) =>
  import(pathToFileURL(join(moduleDir, "node_modules", name, file)).href);
const { default: Provider } = await load("oidc-provider", "lib/index.js");

const issuer = `http://127.0.0.1:${port}`;
const configuration = {
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
};
if (redisPort) {
  const { default: Redis } = await load("ioredis", "built/index.js");
  const redis = new Redis({ host: "127.0.0.1", port: Number(redisPort) });
  configuration.adapter = redisAdapter(redis);
}
const provider = new Provider(issuer, configuration);

createServer(provider.callback()).listen(Number(port), "127.0.0.1", () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

// An oidc-provider storage adapter over Redis: one JSON value per model
// instance, with the instance's lifetime as TTL. Grants list the keys of
// their tokens so that revoking a grant removes them.
function redisAdapter(redis) {
  const grantable = new Set([
    "AccessToken",
    "AuthorizationCode",
    "RefreshToken",
    "DeviceCode",
    "BackchannelAuthenticationRequest",
  ]);

  return class RedisAdapter {
    constructor(name) {
      this.name = name;
    }

    key(id) {
      return `${this.name}:${id}`;
    }

    async upsert(id, payload, expiresIn) {
      const key = this.key(id);
      const multi = redis.pipeline();
      if (expiresIn) {
        multi.set(key, JSON.stringify(payload), "EX", expiresIn);
      } else {
        multi.set(key, JSON.stringify(payload));
      }
      if (grantable.has(this.name) && payload.grantId) {
        const grantKey = `grant:${payload.grantId}`;
        multi.rpush(grantKey, key);
        if (expiresIn) {
          multi.expire(grantKey, expiresIn);
        }
      }
      if (payload.userCode) {
        multi.set(`userCode:${payload.userCode}`, id, "EX", expiresIn);
      }
      if (payload.uid) {
        multi.set(`uid:${payload.uid}`, id, "EX", expiresIn);
      }
      await multi.exec();
    }

    async find(id) {
      const value = await redis.get(this.key(id));
      return value ? JSON.parse(value) : undefined;
    }

    async findByUid(uid) {
      const id = await redis.get(`uid:${uid}`);
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode) {
      const id = await redis.get(`userCode:${userCode}`);
      return id ? this.find(id) : undefined;
    }

    async consume(id) {
      const found = await this.find(id);
      if (!found) return;
      found.consumed = Math.floor(Date.now() / 1000);
      const ttl = await redis.ttl(this.key(id));
      await this.upsert(id, found, ttl > 0 ? ttl : undefined);
    }

    async destroy(id) {
      await redis.del(this.key(id));
    }

    async revokeByGrantId(grantId) {
      const grantKey = `grant:${grantId}`;
      const keys = await redis.lrange(grantKey, 0, -1);
      await redis.del(...keys, grantKey);
    }
  };
}
