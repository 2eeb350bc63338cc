"""Evidence files: the server detects the type from the bytes, refuses what is not on the
allow-list, stores the file under its own name with the extension of that type, keeps the
client's name for display only, and serves photos inline and everything else as a download."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from app.extensions import db
from app.models import Attachment, Role
from app.services import cases
from helpers import Api, Browser

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
WEBP = b"RIFF\x24\x00\x00\x00WEBPVP8 " + b"\x00" * 64
PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"



@pytest.fixture
def admin(app, make_user) -> tuple[Api, Browser]:
    """One business administrator of the gas line, through the API and through the pages
    (one session: the API client shares the browser's cookies)."""
    account = make_user((Role.BUSINESS_ADMIN, "scenario.gas"))
    client = app.test_client()
    browser = Browser(client)
    assert browser.login(account["username"], account["password"]).status_code == 302
    api = Api(client)
    api.token = client.get("/api/v1/csrf").get_json()["csrf_token"]
    return api, browser


def _upload(api: Api, case_no: str, content: bytes, name: str, declared: str) -> Any:
    boundary, body = encode_multipart(MultiDict({"file": FileStorage(
        BytesIO(content), filename=name, content_type=declared)}))
    return api.post(f"/cases/{case_no}/attachments", data=body,
                    content_type=f"multipart/form-data; boundary={boundary}")


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Attachment)) or 0


@pytest.mark.parametrize(("content", "name", "declared", "kind", "extension", "inline"), [
    (PNG, "x.html", "text/html", "image/png", ".png", True),
    (JPEG, "photo.svg", "image/svg+xml", "image/jpeg", ".jpg", True),
    (WEBP, "现场", "application/octet-stream", "image/webp", ".webp", True),
    (PDF, "report.exe", "image/png", "application/pdf", ".pdf", False),
])
def test_the_stored_name_and_type_come_from_the_bytes(app, gas_case, admin, content, name,
                                                      declared, kind, extension,
                                                      inline) -> None:
    api, browser = admin
    added = _upload(api, gas_case, content, name, declared)
    assert added.status_code == 201, added.get_json()
    meta = added.get_json()
    assert meta["content_type"] == kind and meta["filename"] == name
    assert meta["stored_name"] == f"evidence-{meta['id']}{extension}"
    served = browser.get(f"/cases/{gas_case}/attachments/{meta['id']}")
    assert served.status_code == 200 and served.data == content
    assert served.mimetype == kind
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    disposition = served.headers["Content-Disposition"]
    assert disposition == ("inline" if inline else "attachment") + \
        f"; filename={meta['stored_name']}"
    assert name not in disposition


@pytest.mark.parametrize(("content", "name", "declared"), [
    (b"<html><script>alert(1)</script></html>", "photo.png", "image/png"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "x.svg", "image/svg+xml"),
    (b"GIF89a\x01\x00\x01\x00\x00\x00\x00;", "x.gif", "image/gif"),
    (b"MZ\x90\x00 an executable", "x.jpg", "image/jpeg"),
    (b"PK\x03\x04 a zip", "x.pdf", "application/pdf"),
    (b"plain text", "notes.txt", "text/plain"),
])
def test_types_off_the_list_are_refused_by_content(app, gas_case, admin, content, name,
                                                   declared) -> None:
    api, _ = admin
    refused = _upload(api, gas_case, content, name, declared)
    assert refused.status_code == 422
    body = refused.get_json()
    assert body["code"] == "validation_failed" and "file" in body["details"]
    assert "JPEG" in body["message"] or "JPEG" in str(body["details"])
    assert _count(app) == 0


@pytest.mark.parametrize(("name", "shown"), [
    ("../../etc/passwd.png", "passwd.png"),
    ("C:\\Users\\me\\现场.png", "现场.png"),
    ("a\u202egnp.exe", "agnp.exe"),
    ("zero\u200bwidth\x07bell.png", "zerowidthbell.png"),
    ("tab\tand\nnewline.png", "tab and newline.png"),
    ("", "evidence"),
    ("   ", "evidence"),
    ("x" * 500 + ".png", "x" * 200),
])
def test_the_clients_name_is_kept_only_as_clean_display_text(name, shown) -> None:
    assert cases.display_filename(name) == shown


def test_an_uploaded_name_is_cleaned_before_it_is_stored(app, gas_case, admin) -> None:
    api, _ = admin
    added = _upload(api, gas_case, PNG, "../../etc/a\u202egnp.exe", "image/png")
    assert added.status_code == 201, added.get_json()
    assert added.get_json()["filename"] == "agnp.exe"


def test_the_case_page_escapes_the_name_shows_photos_and_links_downloads(app, gas_case,
                                                                        admin) -> None:
    api, browser = admin
    photo = _upload(api, gas_case, PNG, '<img src=x onerror=alert(1)>.png', "image/png")
    document = _upload(api, gas_case, PDF, "记录.pdf", "application/pdf")
    photo_id, document_id = photo.get_json()["id"], document.get_json()["id"]
    page = browser.text(f"/cases/{gas_case}")
    assert "<img src=x onerror" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    photo_url = f"/cases/{gas_case}/attachments/{photo_id}"
    assert re.search(rf'<img src="{photo_url}"', page)
    assert re.search(rf'<a href="{photo_url}"[^>]*data-viewer="image"', page)  # in-page viewer
    assert re.search(rf'<a href="/cases/{gas_case}/attachments/{document_id}"[^>]*download=',
                     page)


def test_web_uploads_follow_the_same_rules(app, gas_case, admin) -> None:
    _, browser = admin
    token = browser.csrf(f"/cases/{gas_case}")
    response = browser.client.post(f"/cases/{gas_case}/attachments", data={
        "csrf_token": token, "file": (BytesIO(PNG), "x.html", "text/html")},
        content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        stored = db.session.scalar(select(Attachment))
        assert stored.content_type == "image/png" and stored.filename == "x.html"
        assert stored.stored_name == f"evidence-{stored.id}.png"
