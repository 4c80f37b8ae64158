"""A message's files: found where the summary counted them, named safely, decoded exactly."""

from __future__ import annotations

from email.message import EmailMessage

from inboxd.mail.attachments import inline_images, list_parts, part_bytes
from inboxd.mail.message import summarize_message
from tests.support.mail import MALFORMED, make_message


def _with(*files: tuple[bytes, str, str, str | None]) -> bytes:
    msg = EmailMessage()
    msg["Subject"] = "files"
    msg.set_content("see attached")
    for data, maintype, subtype, filename in files:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def test_files_are_numbered_in_tree_order_and_decoded_exactly() -> None:
    binary = bytes(range(256)) * 40
    raw = _with(
        (binary, "application", "octet-stream", "data.bin"),
        (b"%PDF-1.4", "application", "pdf", "doc.pdf"),
    )
    parts = list_parts(raw)
    assert [(p.index, p.filename, p.content_type) for p in parts] == [
        (0, "data.bin", "application/octet-stream"),
        (1, "doc.pdf", "application/pdf"),
    ]
    assert part_bytes(raw, parts[0]) == binary and parts[0].size == len(binary)
    assert summarize_message(raw).attachment_count == len(parts)


def test_names_are_decoded_and_never_paths() -> None:
    raw = (
        b"Subject: names\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.txt\r\n\r\nx\r\n"
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?q?na=C3=AFve.doc?="\r\n\r\ny\r\n'
        b"--b\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="../../etc/passwd"\r\n\r\nz\r\n'
        b'--b\r\nContent-Type: text/plain; name="quoted.txt"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"Content-Disposition: attachment\r\n\r\ncaf=C3=A9=\r\n!\r\n"
        b"--b--\r\n"
    )
    parts = list_parts(raw)
    assert [p.filename for p in parts] == ["résumé.txt", "naïve.doc", "passwd", "quoted.txt"]
    assert part_bytes(raw, parts[3]) == "café!".encode()


def test_attached_messages_and_inline_images() -> None:
    inner = make_message(1)
    outer = EmailMessage()
    outer["Subject"] = "fwd"
    outer.set_content("forwarded")
    outer.add_alternative('<p><img src="cid:pic@x"></p>', subtype="html")
    html_part = outer.get_payload()[1]  # type: ignore[index]
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(b"GIF89a", maintype="image", subtype="gif", cid="<pic@x>")
    outer.add_attachment(inner, maintype="message", subtype="rfc822")
    raw = outer.as_bytes()
    parts = list_parts(raw)
    assert [(p.content_type, p.inline, p.content_id) for p in parts] == [
        ("image/gif", True, "pic@x"),
        ("message/rfc822", False, None),
    ]
    assert b"Message number 1" in part_bytes(raw, parts[1])
    assert inline_images(raw, parts) == {"pic@x": "data:image/gif;base64,R0lGODlh"}
    assert inline_images(raw, parts, cap=3) == {}


def test_broken_mail_has_no_files_rather_than_an_error() -> None:
    assert list_parts(b"") == []
    assert list_parts(b"\xff\xfe garbage without headers") == []
    assert list_parts(MALFORMED) == []
    guessed = (
        b'Subject: x\r\nContent-Type: multipart/mixed; boundary="wrong"\r\n\r\n'
        b"--right\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
        b"--right\r\nContent-Type: application/zip\r\n"
        b'Content-Disposition: attachment; filename="a.zip"\r\n\r\nPK\r\n--right--\r\n'
    )
    parts = list_parts(guessed)
    assert [p.filename for p in parts] == ["a.zip"]
    assert summarize_message(guessed).attachment_count == 1
