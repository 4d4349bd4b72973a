// Drives the gateway with the client libraries its users run, as they configure
// them by default, and prints one JSON object with what each client saw; the
// assertions are in gateway/tests/api/clients.rs, which starts the gateway.
//
// Environment: GATEWAY_URL (…/graphql), TOKEN (a bearer token of a LIBRARIAN who is
// not an ADMIN), UPC (a copy this run may check out and in), EMAIL (the patron it is
// checked out to).
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { createClient as createSseClient } from "graphql-sse";

const url = process.env.GATEWAY_URL;
const token = process.env.TOKEN;
const upc = process.env.UPC;
const email = process.env.EMAIL;
const auth = { authorization: `Bearer ${token}` };

/** fetch, recording each request's method and whether it carried the query text. */
function recordingFetch(log) {
  return async (input, init = {}) => {
    const target = String(input);
    const method = (init.method ?? "GET").toUpperCase();
    const carried = method === "GET" ? new URL(target).searchParams.get("query") : init.body;
    log.push({ method, withQueryText: Boolean(carried && String(carried).includes("books")) });
    return fetch(input, init);
  };
}

function apollo(fetchImpl, { persisted = false } = {}) {
  const http = new HttpLink({ uri: url, headers: auth, fetch: fetchImpl });
  const link = persisted
    ? new PersistedQueryLink({
        sha256: (text) => createHash("sha256").update(text).digest("hex"),
        useGETForHashedQueries: true,
      }).concat(http)
    : http;
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

function codes(errors) {
  return (errors ?? []).map((e) => e.extensions?.code ?? null);
}

/** Automatic persisted queries with hashed GETs: one miss, then hashes only. */
async function persistedQueries() {
  const requests = [];
  const client = apollo(recordingFetch(requests), { persisted: true });
  const query = gql`query Titles { books { title } }`;
  const first = await client.query({ query, fetchPolicy: "network-only" });
  const second = await client.query({ query, fetchPolicy: "network-only" });
  return { requests, first: first.data, second: second.data };
}

/** A failed nullable field, as Apollo Client's cache reads it back. */
async function failedField() {
  const client = apollo(fetch);
  const result = await client.query({
    query: gql`query Patron($email: String!) { patron(email: $email) { firstName email } }`,
    variables: { email },
    errorPolicy: "all",
  });
  return { data: result.data ?? null, codes: codes(result.error?.errors) };
}

async function gqlPost(query, variables) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ query, variables }),
  });
  return response.json();
}

const CHECK_OUT = `mutation($u: String!, $e: String!) { checkoutAsset(assetUpc: $u, userEmail: $e) { id } }`;
const CHECK_IN = `mutation($u: String!) { checkinAsset(assetUpc: $u) { id } }`;
const SUBSCRIPTION = `subscription { checkoutStatusUpdate { id assetUpc userEmail } }`;

/**
 * Checks `upc` out until `events` (a queue the subscription fills) shows that
 * checkout: a client has no signal that its subscription is registered, so the
 * first checkouts may come before it. Each attempt is undone; at most 20.
 */
async function triggerUntilSeen(events) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const made = await gqlPost(CHECK_OUT, { u: upc, e: email });
    const id = made?.data?.checkoutAsset?.id;
    if (!id) throw new Error(`checkout failed: ${JSON.stringify(made)}`);
    // Instances of other tests may share the broker: ids repeat across their
    // databases, so an event is ours by id and copy.
    const seen = await events.waitFor((e) => e.id === id && e.assetUpc === upc, 1000);
    const back = await gqlPost(CHECK_IN, { u: upc });
    if (!back?.data?.checkinAsset) throw new Error(`checkin failed: ${JSON.stringify(back)}`);
    if (seen) return seen;
  }
  throw new Error("no event after 20 checkouts");
}

/** Events as they come, awaitable by predicate. */
function eventQueue() {
  const seen = [];
  let waiter = null;
  return {
    push(event) {
      seen.push(event);
      if (waiter) waiter();
    },
    async waitFor(predicate, ms) {
      const deadline = Date.now() + ms;
      for (;;) {
        const found = seen.find(predicate);
        if (found) return found;
        const left = deadline - Date.now();
        if (left <= 0) return null;
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          waiter = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    },
  };
}

/** A subscription through Apollo Client's HttpLink: the multipart protocol. */
async function multipartSubscription() {
  const requests = [];
  const client = apollo(async (input, init) => {
    requests.push({ accept: new Headers(init?.headers).get("accept") });
    return fetch(input, init);
  });
  const events = eventQueue();
  const errors = [];
  const subscription = client
    .subscribe({ query: gql(SUBSCRIPTION) })
    .subscribe({
      next: (result) => result.data && events.push(result.data.checkoutStatusUpdate),
      error: (e) => errors.push(String(e)),
    });
  try {
    const event = await triggerUntilSeen(events);
    return { event, accept: requests[0]?.accept ?? null, errors };
  } finally {
    subscription.unsubscribe();
  }
}

/** A subscription through graphql-sse's client, "distinct connections" mode. */
async function sseSubscription() {
  const client = createSseClient({ url, headers: auth, singleConnection: false, retryAttempts: 0 });
  const events = eventQueue();
  const errors = [];
  const dispose = client.subscribe(
    { query: SUBSCRIPTION },
    {
      next: (result) => result.data && events.push(result.data.checkoutStatusUpdate),
      error: (e) => errors.push(String(e?.message ?? e)),
      complete: () => {},
    },
  );
  try {
    const event = await triggerUntilSeen(events);
    return { event, errors };
  } finally {
    dispose();
    client.dispose();
  }
}

const results = {};
for (const [name, run] of Object.entries({
  persistedQueries,
  failedField,
  multipartSubscription,
  sseSubscription,
})) {
  try {
    results[name] = await run();
  } catch (e) {
    results[name] = { thrown: String(e?.stack ?? e) };
  }
}
process.stdout.write(JSON.stringify(results) + "\n");
