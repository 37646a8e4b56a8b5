// A journey through Tidings with jmap-jam, a JavaScript JMAP client nobody on this project wrote.
// Run by tests/interop/test_jmap_jam.py:  node journey.mjs SESSION_URL BEARER_TOKEN
// Prints one line per step ("ok STEP ...") and exits non-zero on the first failure.

import assert from "node:assert/strict";
import JamClient from "jmap-jam";

const [sessionUrl, bearerToken] = process.argv.slice(2);
const jam = new JamClient({ sessionUrl, bearerToken });

function ok(step, detail = "") {
  console.log(`ok ${step}${detail ? " " + detail : ""}`);
}

async function main() {
  // Bearer-token authentication and session discovery (RFC 8620 §2).
  const session = await jam.session;
  assert.equal(session.username, "demo");
  for (const url of [session.apiUrl, session.uploadUrl, session.downloadUrl, session.eventSourceUrl]) {
    assert.match(url, /^https?:\/\//, `session URLs must be absolute: ${url}`);
  }
  const accountId = await jam.getPrimaryAccount();
  assert.ok(accountId);
  ok("session", accountId);

  const [echo] = await jam.api.Core.echo({ hello: "tidings" });
  assert.deepEqual(echo, { hello: "tidings" });
  ok("echo");

  // Batched calls with back-references (RFC 8620 §3.7): the four-step chain of the RFC's example:
  // search, the found emails' threads, and every email of those threads, in one request.
  const [chain] = await jam.requestMany((t) => {
    const found = t.Email.query({
      accountId,
      filter: { text: "offsite" },
      sort: [{ property: "receivedAt", isAscending: false }],
      collapseThreads: true,
      limit: 5,
    });
    const firsts = t.Email.get({ accountId, ids: found.$ref("/ids"), properties: ["threadId"] });
    const threads = t.Thread.get({ accountId, ids: firsts.$ref("/list/*/threadId") });
    const emails = t.Email.get({
      accountId,
      ids: threads.$ref("/list/*/emailIds"),
      properties: ["subject", "from", "receivedAt", "hasAttachment", "attachments"],
    });
    return { found, firsts, threads, emails };
  });
  assert.equal(chain.found.ids.length, 1, "one thread talks about the offsite");
  assert.equal(chain.threads.list.length, 1);
  const thread = chain.threads.list[0];
  assert.ok(thread.emailIds.length >= 4, "the offsite thread has the whole conversation");
  assert.equal(chain.emails.list.length, thread.emailIds.length);
  const withAgenda = chain.emails.list.find((e) => e.hasAttachment);
  assert.ok(withAgenda, "the first message carries the agenda");
  const agenda = withAgenda.attachments.find((a) => a.name === "agenda.txt");
  assert.ok(agenda);
  ok("back-references", `${thread.emailIds.length} emails in thread ${thread.id}`);

  // Download an attachment (RFC 8620 §6.2) through the session's downloadUrl template.
  const download = await jam.downloadBlob({
    accountId,
    blobId: agenda.blobId,
    mimeType: agenda.type,
    fileName: agenda.name,
  });
  assert.equal(download.status, 200);
  assert.match(download.headers.get("content-type"), /^text\/plain/);
  const agendaText = await download.text();
  assert.match(agendaText, /Offsite agenda/);
  ok("download", `${agendaText.length} characters`);

  // Upload (RFC 8620 §6.1), then use the blob as an attachment of a new draft, and read it back, in
  // one request: Mailbox/query finds Drafts, Email/set refers to it, Email/get to the created email.
  const content = Buffer.from("name,amount\ncoffee,3.50\n");
  const uploaded = await jam.uploadBlob(accountId, new Blob([content], { type: "text/csv" }));
  assert.equal(uploaded.accountId, accountId);
  assert.equal(uploaded.size, content.length);
  assert.equal(uploaded.type, "text/csv");
  ok("upload", uploaded.blobId);

  const [{ drafts }] = await jam.requestMany((t) => ({
    drafts: t.Mailbox.query({ accountId, filter: { role: "drafts" } }),
  }));
  const draftsId = drafts.ids[0];
  const [made, meta] = await jam.requestMany((t) => {
    const set = t.Email.set({
      accountId,
      create: {
        k1: {
          mailboxIds: { [draftsId]: true },
          keywords: { $draft: true, $seen: true },
          from: [{ name: "Demo User", email: session.username + "@localhost" }],
          to: [{ name: "Tom Becker", email: "tom.becker@example.com" }],
          subject: "Expenses from the offsite",
          textBody: [{ partId: "t", type: "text/plain" }],
          bodyValues: { t: { value: "Receipts attached.\n" } },
          attachments: [{ blobId: uploaded.blobId, type: "text/csv", name: "expenses.csv" }],
        },
      },
    });
    const got = t.Email.get({
      accountId,
      ids: ["#k1"],
      properties: ["subject", "mailboxIds", "keywords", "attachments", "hasAttachment"],
    });
    return { set, got };
  });
  assert.ok(made.set.created && made.set.created.k1, JSON.stringify(made.set.notCreated));
  const created = made.set.created.k1;
  assert.ok(created.id && created.blobId && created.threadId && created.size > 0);
  const draft = made.got.list[0];
  assert.equal(draft.id, created.id);
  assert.equal(draft.subject, "Expenses from the offsite");
  assert.deepEqual(draft.mailboxIds, { [draftsId]: true });
  assert.equal(draft.hasAttachment, true);
  assert.equal(draft.attachments[0].name, "expenses.csv");
  ok("create with attachment", `${created.id} ${meta.sessionState}`);

  // The attachment downloads as the bytes that were uploaded.
  const back = await jam.downloadBlob({
    accountId,
    blobId: draft.attachments[0].blobId,
    mimeType: "text/csv",
    fileName: "expenses.csv",
  });
  assert.deepEqual(Buffer.from(await back.arrayBuffer()), content);
  assert.match(back.headers.get("content-disposition"), /expenses\.csv/);
  ok("download attachment");

  // Method-level errors come back as errors, not as HTTP failures (RFC 8620 §3.6.2).
  await assert.rejects(jam.api.Email.get({ accountId: "no-such-account", ids: [] }), (error) => {
    assert.equal(error.type, "accountNotFound");
    return true;
  });
  ok("method error");
}

main().catch((error) => {
  console.error("FAILED:", error instanceof Error ? error.stack : JSON.stringify(error));
  process.exit(1);
});
