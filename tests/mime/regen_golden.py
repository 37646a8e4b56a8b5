"""Regenerate tests/mime/golden/*.json from the shared corpus.

Usage (from the repository root)::

    .venv/bin/python -m tests.mime.regen_golden            # rewrite every golden file
    .venv/bin/python -m tests.mime.regen_golden NAME ...   # only these golden names

Each golden file records the corpus-relative path of one message and the expected parse
output. After regenerating, read every changed file and check it against RFC 8621: a
golden file that records a parser bug is a defect, not a test.
"""

from __future__ import annotations

import json
import sys

from tests.mime.corpus import CORPUS, GOLDEN, parse_corpus_message, snapshot

# golden name -> corpus-relative message path (``path#n`` for the n-th message of an mbox)
SELECTION: dict[str, str] = {
    "torture": "mailgun-flanker/torture.eml",
    "torture-part": "mailgun-flanker/torture-part.eml",
    "alternative": "apache-james/server/protocols/jmap-rfc-8621-integration-tests/"
                   "jmap-rfc-8621-integration-tests-common/src/main/resources/eml/alternative.eml",
    "related-in-alternative": "apache-james/server/protocols/jmap-rfc-8621-integration-tests/"
                              "jmap-rfc-8621-integration-tests-common/src/main/resources/eml/"
                              "related_in_alternative_multipart.eml",
    "nested2": "apache-james/server/protocols/jmap-rfc-8621-integration-tests/"
               "jmap-rfc-8621-integration-tests-common/src/main/resources/eml/nested2.eml",
    "inlined-attachment": "apache-james/mailbox/store/src/test/resources/eml/oneInlinedAttachment.eml",
    "two-attachments": "apache-james/mailbox/store/src/test/resources/eml/twoAttachments.eml",
    "non-ascii-filename-2231": "apache-james/mailbox/store/src/test/resources/eml/"
                               "messageWithNonASCIIFilenameAttachment.eml",
    "cid-without-disposition": "apache-james/mailbox/store/src/test/resources/eml/noContentDispositionWithCID.eml",
    "invalid-charset": "apache-james/mailbox/store/src/test/resources/eml/invalidCharset.eml",
    "calendar": "apache-james/mailbox/store/src/test/resources/eml/calendar.eml",
    "pgp-signed": "apache-james/mailbox/store/src/test/resources/eml/pgpSignedMail.eml",
    "smime-signed": "apache-james/server/mailet/integration-testing/src/main/resources/"
                    "smime-test-resource-set/mail_with_signature.eml",
    "smime-encrypted": "apache-james/server/mailet/integration-testing/src/main/resources/eml/crypted.eml",
    "rfc822-attachment": "mikel-mail/attachment_emails/attachment_message_rfc822.eml",
    "encoded-filename": "mikel-mail/attachment_emails/attachment_with_encoded_name.eml",
    "japanese-long-name-2231": "mikel-mail/multi_charset/japanese_attachment_long_name.eml",
    "iso-2022-jp": "mikel-mail/multi_charset/japanese_iso_2022.eml",
    "shift-jis": "mikel-mail/multi_charset/japanese_shift_jis.eml",
    "ks-c-5601": "mikel-mail/multi_charset/ks_c_5601-1987.eml",
    "dsn-report": "mikel-mail/multipart_report_emails/report_422.eml",
    "dsn-bounce": "mailgun-flanker/bounce/zed.eml",
    "mdn": "mailgun-flanker/disposition-notification.eml",
    "missing-boundaries": "mailgun-flanker/missing-boundaries.eml",
    "no-content-type": "mailgun-flanker/no-ctype.eml",
    "quoted-printable": "mailgun-flanker/quoted-printable.eml",
    "obsolete-syntax": "mikel-mail/rfc2822/example13.eml",
    "utf8-headers": "mikel-mail/rfc6532/utf8_headers.eml",
    "mhtml-related": "mimekit/messages/multipart-related-mhtml.txt",
    "digest-in-rfc822": "mimekit/messages/multipart-digest.txt",
    "tnef": "mimekit/tnef/ukr.eml",
    "yahoo-invitation": "apache-james/server/mailet/integration-testing/src/main/resources/eml/yahooInvitation.eml",
    "encoding-madness": "mikel-mail/error_emails/encoding_madness.eml",
    "mbox-member": "mimekit/mbox/simple.mbox.txt#1",
}


def write(name: str) -> None:
    path = SELECTION[name]
    data = {"message": path, "expected": snapshot(parse_corpus_message(path))}
    text = json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    (GOLDEN / f"{name}.json").write_text(text, encoding="utf-8")


def main(argv: list[str]) -> int:
    if not CORPUS.is_dir():
        print(f"corpus not found at {CORPUS}", file=sys.stderr)
        return 1
    GOLDEN.mkdir(exist_ok=True)
    for name in argv or sorted(SELECTION):
        write(name)
        print(f"wrote golden/{name}.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
