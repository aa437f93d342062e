// Starts mock-event-hub (TLS AMQP on 127.0.0.1) for flowd's e2e tests and
// bridges the points where it differs from what azeventhubs/v2 expects:
//  1. TLS: the certificate names "localhost"; the Go client must set
//     ServerName = "localhost" (go-amqp would check "localhost:PORT").
//  2. Settle modes: the SDK's $cbs/$management links ask for settled sends
//     and go-amqp closes a link whose peer answers "mixed": every link
//     attach mirrors the settle modes the client requested.
//  3. Management requests without a body made the mock throw and drop the
//     connection: such messages are passed through untouched.
//  4. Hub properties lack georeplication_factor, which azeventhubs/v2
//     requires: the READ response carries georeplication_factor = 1.
// It also records every message the hub receives (size, the link's max
// message size, partition key and id, event bodies and properties) and serves
// them as JSON on a loopback HTTP port for the tests: GET /messages,
// POST /reset. Events are not kept in the mock's own store; the record keeps
// the latest EH_MAX_RECORDED_EVENTS events.
"use strict";
const fs = require("fs");
const http = require("http");
const { MockEventHub } = require("mock-event-hub");
const { MockServer } = require("mock-event-hub/dist/server/mockServer");
const runtimeInfo = require("mock-event-hub/dist/messages/event-hubs/runtimeInfo");
const rhea = require("rhea");

const env = (k, d) => process.env[k] || d;
const port = Number(env("EH_PORT", "15671"));
const controlPort = Number(env("EH_CONTROL_PORT", "15672"));
const name = env("EH_NAME", "flowd");
const partitions = Number(env("EH_PARTITIONS", "4"));
const maxMessageSize = Number(env("EH_MAX_MESSAGE_SIZE", String(256 * 1024)));
const maxRecordedEvents = Number(env("EH_MAX_RECORDED_EVENTS", "200000"));

// (3) guard messages without a body.
const normalize = MockServer.prototype._normalizeIncomingMessage;
MockServer.prototype._normalizeIncomingMessage = function (message) {
  if (!Buffer.isBuffer(message) && (message.body === undefined || message.body === null)) {
    return [message];
  }
  return normalize.call(this, message);
};

// (4) georeplication_factor in the hub's properties.
const hubInfo = runtimeInfo.generateHubRuntimeInfoResponse;
runtimeInfo.generateHubRuntimeInfoResponse = function (args) {
  const msg = hubInfo(args);
  msg.body.georeplication_factor = rhea.types.wrap_int(1);
  return msg;
};

// Recording instead of the in-memory store.
let recorded = [];
let recordedEvents = 0;
let dropped = 0;
const bodyText = (b) => {
  if (b === undefined || b === null) return "";
  if (Buffer.isBuffer(b)) return b.toString("utf8");
  if (b.content !== undefined) return bodyText(b.content);
  if (typeof b === "string") return b;
  return JSON.stringify(b);
};
const received = MockEventHub.prototype._handleReceivedMessage;
MockEventHub.prototype._handleReceivedMessage = function (event, partitionId) {
  const size = event.context.message && event.context.message.length !== undefined ? event.context.message.length : -1;
  const max = event.context.receiver ? event.context.receiver.get_option("max_message_size", 1024 * 1024) : -1;
  const ann = (event.messages[0] && event.messages[0].message_annotations) || {};
  recordedEvents += event.messages.length;
  recorded.push({
    size,
    max_message_size: max,
    partition_key: ann["x-opt-partition-key"] === undefined ? null : String(ann["x-opt-partition-key"]),
    partition_id: partitionId === undefined ? null : partitionId,
    events: event.messages.map((m) => ({ body: bodyText(m.body), properties: m.application_properties || {} })),
  });
  // Bounded memory: the oldest messages go first.
  while (recordedEvents > maxRecordedEvents && recorded.length > 1) {
    recordedEvents -= recorded.shift().events.length;
    dropped++;
  }
  return received.call(this, event, partitionId);
};
MockEventHub.prototype._storeMessage = function () {};

const hub = new MockEventHub({
  name,
  partitionCount: partitions,
  port,
  host: "127.0.0.1",
  maxMessageSize,
  tlsOptions: {
    host: "127.0.0.1",
    key: fs.readFileSync(env("EH_KEY", "key.pem")),
    cert: fs.readFileSync(env("EH_CERT", "cert.pem")),
  },
});

// (2) mirror the requested settle modes on every link attach.
const container = hub._mockServer._container;
const mirror = (context) => {
  const link = context.sender || context.receiver;
  if (!link || !link.remote || !link.remote.attach) return;
  const r = link.remote.attach;
  if (r.snd_settle_mode !== undefined) link.local.attach.snd_settle_mode = r.snd_settle_mode;
  if (r.rcv_settle_mode !== undefined) link.local.attach.rcv_settle_mode = r.rcv_settle_mode;
};
container.on("sender_open", mirror);
container.on("receiver_open", mirror);

http
  .createServer((req, res) => {
    if (req.url.startsWith("/messages")) {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ hub: name, partitions, max_message_size: maxMessageSize, dropped, messages: recorded }));
    } else if (req.url.startsWith("/reset") && req.method === "POST") {
      recorded = [];
      recordedEvents = 0;
      dropped = 0;
      res.end("ok\n");
    } else {
      res.statusCode = 404;
      res.end("GET /messages, POST /reset\n");
    }
  })
  .listen(controlPort, "127.0.0.1");

hub.start().then(
  () => console.log(`mock event hub ${name} (${partitions} partitions, max message ${maxMessageSize} B) on 127.0.0.1:${port}, control on 127.0.0.1:${controlPort}`),
  (err) => {
    console.error("mock event hub failed to start:", err);
    process.exit(1);
  }
);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => hub.stop().finally(() => process.exit(0)));
