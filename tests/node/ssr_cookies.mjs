// Writes and reads Supabase sessions through @supabase/ssr's own cookie
// adapter, so the Python token function is tested against the real format.
//
//   node ssr_cookies.mjs write < {url, anonKey, encoding, session}
//     -> {cookies: [{name, value, options}], cookieHeader}
//   node ssr_cookies.mjs read  < {url, anonKey, encoding, cookieHeader}
//     -> {session}
import { createServerClient, parseCookieHeader } from "@supabase/ssr";

const input = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (chunk) => (data += chunk));
  process.stdin.on("end", () => resolve(data));
}));

const written = [];
// Realtime is never used here; older Node has no WebSocket for it to find.
class NoWebSocket {}

const client = createServerClient(input.url, input.anonKey, {
  realtime: { transport: NoWebSocket },
  cookieEncoding: input.encoding,
  cookies: {
    getAll: () => (input.cookieHeader ? parseCookieHeader(input.cookieHeader) : []),
    setAll: (cookies) => written.push(...cookies),
  },
});

if (process.argv[2] === "write") {
  const { error } = await client.auth.setSession({
    access_token: input.session.access_token,
    refresh_token: input.session.refresh_token,
  });
  if (error) throw error;
  // What a browser sends back: each cookie's stored (encoded) value.
  const live = written.filter((c) => c.value !== "");
  const cookieHeader = live.map((c) => `${c.name}=${encodeURIComponent(c.value)}`).join("; ");
  process.stdout.write(JSON.stringify({ cookies: written, cookieHeader }));
} else {
  const { data, error } = await client.auth.getSession();
  if (error) throw error;
  process.stdout.write(JSON.stringify({ session: data.session }));
}
