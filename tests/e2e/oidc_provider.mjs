// A real OpenID Connect provider for the SSO test: panva's certified `oidc-provider` (npm),
// with its development login form (any name logs in).
// Usage: node oidc_provider.mjs PORT REDIRECT_URI [ACCOUNTS_JSON]  (more users: name → claims)
import Provider from "oidc-provider";

const [port, redirectUri, moreAccounts] = process.argv.slice(2);
const accounts = {
  // name → claims the municipality's identity provider would send
  "soc.anna": { groups: ["norrvakt-soc"], municipality: [] },
  "boden.erik": { groups: ["norrvakt-officer"], municipality: ["boden"] },
  "nobody.karl": { groups: ["staff"], municipality: ["lulea"] },
  ...JSON.parse(moreAccounts || "{}"),
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: "norrvakt",
    client_secret: "norrvakt-test-secret",
    redirect_uris: [redirectUri],
    grant_types: ["authorization_code"],
    response_types: ["code"],
    token_endpoint_auth_method: "client_secret_basic",
  }],
  scopes: ["openid", "profile", "norrvakt"],
  claims: { openid: ["sub"], profile: ["name", "preferred_username"], norrvakt: ["groups", "municipality"] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    async claims() {
      const extra = accounts[id] || { groups: [], municipality: [] };
      return { sub: id, name: id, preferred_username: id, ...extra };
    },
  }),
  loadExistingGrant: async (ctx) => {
    // Consent is the municipality's business, not this test's: grant what the client asks.
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope("openid profile norrvakt");
    grant.addOIDCClaims(["groups", "municipality", "preferred_username", "name"]);
    await grant.save();
    return grant;
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ["norrvakt-test-cookie-key"] },
});
provider.listen(Number(port), () => console.log(`oidc-provider ready on ${port}`));
