import { AckPolicy, DeliverPolicy, connect } from "nats";

// The variables the project's own processes read: NATS_URL and, with deploy/nats-accounts.conf,
// NATS_USER, NATS_PASSWORD and NATS_INBOX_PREFIX. Unset: a local nats-server without accounts.
const env = process.env;
const nc = await connect({
  servers: env.NATS_URL ?? "nats://127.0.0.1:4222",
  ...(env.NATS_USER && { user: env.NATS_USER, pass: env.NATS_PASSWORD }),
  ...(env.NATS_INBOX_PREFIX && { inboxPrefix: env.NATS_INBOX_PREFIX }),
});
const stream = `${(env.NATS_PREFIX ?? "faust").toUpperCase()}_RESULTS`;
const js = nc.jetstream();

// A durable consumer of one student's results: the server keeps its place, so the service
// resumes after the last result it acknowledged. Adding it again with the same settings
// changes nothing; the first time, it starts at the oldest result the stream keeps.
const jsm = await nc.jetstreamManager();
await jsm.consumers.add(stream, {
  durable_name: "adaptive-engine-s-42",
  filter_subject: "results.*.s-42",
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
});
const consumer = await js.consumers.get(stream, "adaptive-engine-s-42");
// Two results here; a service would go on fetching (or use consumer.consume()).
const batch = await consumer.fetch({ max_messages: 2, expires: 5000 });
for await (const m of batch) {
  const result = m.json(); // schemas/result.json describes it
  console.log(m.subject, JSON.stringify(result));
  m.ack();
}

// The metrics bucket: a window's value by its key, <metric>.<student_id>.<window start>.
const kv = await js.views.kv("metrics", { bindOnly: true });
const entry = await kv.get("engagement.s-42.1714557660");
console.log(entry.key, JSON.stringify(entry.json()));

await nc.drain();
