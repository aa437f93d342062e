// Reads "topic base64-payload" lines on stdin and writes one JSON line per
// message, decoded by Eclipse Tahu's sparkplug-payload package (not flowd's
// code): {topic, payload, raw}. payload is Tahu's own reading, which needs a
// datatype in every metric; raw is the protobuf message as its schema reads
// it, for data metrics that carry only an alias and a value (as the
// specification asks). 64-bit integers become decimal strings.
const readline = require("readline");
const sp = require("sparkplug-payload").get("spBv1.0");
const Payload = require("sparkplug-payload/lib/sparkplugPayloadProto").org.eclipse.tahu.protobuf.Payload;

function plain(v) {
  if (v === null || v === undefined) return v;
  if (typeof v === "object" && typeof v.low === "number" && typeof v.high === "number" && typeof v.unsigned === "boolean") {
    return v.toString();
  }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return Buffer.from(v).toString("base64");
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = plain(v[k]);
    return o;
  }
  if (typeof v === "number" && !Number.isFinite(v)) return String(v);
  return v;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const i = line.indexOf(" ");
  if (i < 0) return;
  const topic = line.slice(0, i);
  let out;
  try {
    const buf = Buffer.from(line.slice(i + 1), "base64");
    out = {
      topic,
      payload: plain(sp.decodePayload(buf)),
      raw: Payload.toObject(Payload.decode(buf), { longs: String, bytes: String }),
    };
  } catch (e) {
    out = { topic, error: String(e) };
  }
  process.stdout.write(JSON.stringify(out) + "\n");
});
