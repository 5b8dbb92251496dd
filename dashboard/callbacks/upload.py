"""Upload tab callbacks: ingest files, render the gallery, pick or remove faces.

The plain functions (``handle_upload``, ``render_gallery`` ...) do the work and are what the
tests call; :func:`register` wires them to Dash.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable
from typing import TypedDict

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, ctx, html, no_update
from dash.development.base_component import Component
from dash.exceptions import PreventUpdate

from dashboard import ids
from dashboard.browser_values import text_list
from dashboard.jobs import describe_unexpected
from dashboard.services import MAX_UPLOADS, Face3DService, UploadMeta
from dashboard.services.uploads import display_name
from dashboard.sessions import current_session
from face3d_core.cache import is_sha256_hex
from face3d_core.errors import Face3DError, InvalidImageError
from face3d_core.images import MAX_FILE_BYTES

logger = logging.getLogger(__name__)

#: The most files of one drop that are looked at (those beyond the gallery's room are refused by name).
MAX_FILES_READ = 4 * MAX_UPLOADS


# -- the uploads store ------------------------------------------------------------------


class UploadItem(TypedDict):
    """One photo of the uploads store: its SHA-256 and the face chosen in it (None: none chosen)."""

    sha: str
    face: int | None


def store_items(store: object) -> list[UploadItem]:
    """Return the valid ``{"sha", "face"}`` items of the uploads store (robust to junk).

    At most :data:`MAX_UPLOADS` items (a gallery never holds more): a forged store of a million
    entries costs no more than a full gallery.
    """
    items = store.get("items") if isinstance(store, dict) else None
    if not isinstance(items, list):
        return []
    clean: list[UploadItem] = []
    seen: set[str] = set()
    for item in items[: 4 * MAX_UPLOADS]:
        if len(clean) >= MAX_UPLOADS:
            break
        if not isinstance(item, dict):
            continue
        sha = item.get("sha")
        face = item.get("face")
        if not is_sha256_hex(sha) or sha in seen:
            continue
        seen.add(sha)
        clean.append({"sha": sha, "face": face if isinstance(face, int) and face >= 0 else None})
    return clean


def face_for(store: object, sha: str | None) -> int | None:
    """Return the face index chosen for ``sha`` in the store (None when none was chosen)."""
    for item in store_items(store):
        if item["sha"] == sha:
            return item["face"]
    return None


def decode_data_url(content: str) -> bytes:
    """Return the bytes of a ``data:...;base64,...`` URL as sent by ``dcc.Upload``.

    Raises:
        InvalidImageError: The content is not a base64 data URL.
    """
    if not isinstance(content, str) or "," not in content:
        raise InvalidImageError("The file could not be read by the browser. Please try again.")
    header, payload = content.split(",", 1)
    if ";base64" not in header:
        raise InvalidImageError("The file could not be read by the browser. Please try again.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImageError("The file arrived damaged. Please try again.") from exc


def file_message(name: str, text: str, color: str) -> dbc.Alert:
    """A dismissable per-file message (file name and text are rendered as plain text)."""
    return dbc.Alert(
        [html.Strong(display_name(name)), html.Span(": "), html.Span(text)],
        color=color,
        dismissable=True,
        className="py-2 small mb-2",
    )


def handle_upload(
    service: Face3DService, contents: object, filenames: object, store: object, *, session: str
) -> tuple[dict, list[dbc.Alert]]:
    """Ingest uploaded files one by one; a bad file gets its own message, the others are kept.

    Args:
        service: The dashboard service.
        contents: ``dcc.Upload.contents`` (a data URL or a list of them).
        filenames: ``dcc.Upload.filename`` (a name or a list).
        store: Current uploads store.
        session: The browser session (the photos become its own, under these names).

    Returns:
        ``(new store, messages)``.
    """
    # more files than the gallery takes each get "the gallery is full" (no decoding); a forged list
    # of a million is read no further than this
    offered = len(contents) if isinstance(contents, list) else 1
    contents = text_list(contents, MAX_FILES_READ)
    filenames = text_list(filenames, MAX_FILES_READ)
    filenames += [""] * (len(contents) - len(filenames))
    filenames = [name or f"file {i + 1}" for i, name in enumerate(filenames)]
    items = store_items(store)
    known = {item["sha"] for item in items}
    messages: list[dbc.Alert] = []
    if offered > MAX_FILES_READ:
        messages.append(
            file_message(
                f"{offered} files",
                f"Only the first {MAX_FILES_READ} files were read; a gallery holds {MAX_UPLOADS}.",
                "info",
            )
        )
    added = 0
    whole: dict[str, list[str]] = {}  # reason -> names of photos used whole because detection could not run
    for content, name in zip(contents, filenames, strict=False):
        try:
            if len(items) >= MAX_UPLOADS:
                raise InvalidImageError(f"The gallery is full ({MAX_UPLOADS} photos). Remove some photos first.")
            data = decode_data_url(content)
            meta = service.access.upload(session, data, name)
        except Face3DError as exc:
            logger.info("Refused upload %r: %s", str(name), type(exc).__name__)  # %r: a name cannot forge a line
            messages.append(file_message(name, exc.web_message, "warning"))
            continue
        except Exception as exc:  # noqa: BLE001 - one broken file must not lose the others
            _, _, text = describe_unexpected(exc)
            messages.append(file_message(name, text, "danger"))
            continue
        if meta.sha256 in known:
            messages.append(file_message(name, "This photo is already in the gallery.", "info"))
            continue
        known.add(meta.sha256)
        items.append({"sha": meta.sha256, "face": 0 if meta.face_count else None})
        added += 1
        if meta.detector_unavailable is not None:
            whole.setdefault(meta.detector_unavailable, []).append(str(name))
        elif meta.face_count == 0:
            messages.append(
                file_message(name, "No face was found; the whole photo will be used for depth and 3D.", "info")
            )
    for reason, names in whole.items():  # one message for all photos, not one per photo
        photos = "this photo" if len(names) == 1 else f"these {len(names)} photos"
        messages.append(
            dbc.Alert(
                [
                    html.Strong("Face detection unavailable"),
                    html.Span(f" ({reason}): the whole of {photos} will be used for depth and 3D."),
                ],
                color="info",
                dismissable=True,
                className="py-2 small mb-2",
            )
        )
    if added:
        noun = "photo" if added == 1 else "photos"
        messages.insert(
            0,
            dbc.Alert(
                f"Added {added} {noun}.", color="success", dismissable=True, className="py-2 small mb-2", duration=6000
            ),
        )
    return {"items": items}, messages


def rejected_messages(rejected: object) -> list[dbc.Alert]:
    """Messages for files the browser refused before upload (bigger than the size limit)."""
    files = rejected.get("files") if isinstance(rejected, dict) else None
    messages = []
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("name", "file"))[:200]
        try:
            size_mb = float(entry.get("size", 0)) / 1e6
        except (TypeError, ValueError):
            size_mb = 0.0
        messages.append(
            file_message(
                name,
                f"The file is too large ({size_mb:.1f} MB); the limit is {MAX_FILE_BYTES // (1024 * 1024)} MB.",
                "warning",
            )
        )
    return messages


# -- gallery ----------------------------------------------------------------------------


def _size_text(size_bytes: int) -> str:
    if size_bytes >= 1e6:
        return f"{size_bytes / 1e6:.1f} MB"
    return f"{max(1, round(size_bytes / 1e3))} kB"


def _face_boxes(meta: UploadMeta, selected: int | None) -> list:
    boxes = []
    for index, face in enumerate(meta.faces):
        x, y, w, h = face.box_xywh
        left = max(0.0, x / meta.width * 100)
        top = max(0.0, y / meta.height * 100)
        width = min(100.0 - left, w / meta.width * 100)
        height = min(100.0 - top, h / meta.height * 100)
        chosen = index == selected
        boxes.append(
            html.Button(
                html.Span(str(index + 1), className="face3d-box-label"),
                id=ids.face_box(meta.sha256, index),
                n_clicks=0,
                title=f"Use face {index + 1}",
                className="face3d-box" + (" face3d-box-selected" if chosen else ""),
                style={
                    "left": f"{left:.2f}%",
                    "top": f"{top:.2f}%",
                    "width": f"{width:.2f}%",
                    "height": f"{height:.2f}%",
                },
                **{"aria-label": f"Use face {index + 1}", "aria-pressed": "true" if chosen else "false"},
            )
        )
    return boxes


def faces_summary(meta: UploadMeta, selected: int | None) -> html.Div:
    """What a gallery card says about faces: how many were found, or why the whole photo is used."""
    count = meta.face_count
    if meta.detector_unavailable is not None:
        return html.Div(
            [
                html.Div("Face detection unavailable: the whole photo will be used.", className="small"),
                html.Div(f"Why: {meta.detector_unavailable}.", className="small text-muted"),
            ],
            className="mt-1 face3d-faces-note",
        )
    if count == 0:
        return html.Div("No face found: the whole photo will be used.", className="mt-1 small face3d-faces-note")
    if count == 1:
        return html.Div(dbc.Badge("1 face", color="success"), className="mt-1")
    return html.Div(
        [
            dbc.Badge(f"{count} faces", color="info", className="me-1"),
            html.Span(
                f"Using face {selected + 1 if selected is not None else 1}. Click a box to choose another.",
                className="small text-muted",
            ),
        ],
        className="mt-1",
    )


def gallery_card(meta: UploadMeta, selected: int | None, thumb_url: str) -> dbc.Card:
    """One gallery card: thumbnail with clickable face boxes, name, size, faces found."""
    return dbc.Card(
        [
            html.Div(
                [
                    html.Img(src=thumb_url, alt=f"Photo {meta.name}", className="face3d-thumb"),
                    *_face_boxes(meta, selected),
                ],
                className="face3d-thumb-wrap",
            ),
            dbc.CardBody(
                [
                    html.Div(meta.name, className="fw-semibold text-truncate small", title=meta.name),
                    html.Div(
                        f"{_size_text(meta.size_bytes)} · {meta.width}×{meta.height} px", className="text-muted small"
                    ),
                    faces_summary(meta, selected),
                    dbc.Button(
                        "Remove",
                        id=ids.remove_upload(meta.sha256),
                        n_clicks=0,
                        size="sm",
                        color="danger",
                        outline=True,
                        className="mt-2 face3d-remove",
                        title=f"Remove {meta.name} from the gallery",
                    ),
                ],
                className="p-2",
            ),
        ],
        className="face3d-gallery-card h-100",
    )


def render_gallery(
    service: Face3DService, store: object, thumb_url_for: Callable[[str], str], *, session: str
) -> tuple[list[Component], str]:
    """Return ``(gallery children, count text)`` for the uploads store.

    Args:
        service: The dashboard service.
        store: The uploads store.
        thumb_url_for: ``sha -> URL`` of the thumbnail route.
        session: The browser session (only its own photos are shown, with its own names).
    """
    items = store_items(store)
    cards, missing = [], 0
    for item in items:
        meta = service.access.meta(session, item["sha"])
        if meta is None:
            missing += 1
            continue
        cards.append(gallery_card(meta, meta.face_index(item["face"]), thumb_url_for(meta.sha256)))
    children: list[Component] = []
    if missing:
        children.append(
            dbc.Alert(
                f"{missing} photo(s) are no longer stored on the server (the cache was cleared or they were evicted "
                "to save space) and were left out. Please upload them again.",
                color="info",
                className="small py-2",
                dismissable=True,
            )
        )
    if not cards:
        children.append(
            html.Div(
                className="face3d-empty text-center text-muted",
                children=[
                    html.Div("☺", className="face3d-empty-icon", **{"aria-hidden": "true"}),
                    html.H5("No photos yet", className="mb-1"),
                    html.P("Upload a face photo to begin: drag it onto the box on the left.", className="small mb-0"),
                ],
            )
        )
    else:
        children.append(html.Div(cards, className="face3d-gallery-grid"))
    return children, str(len(cards))


def pick_face(store: object, sha: str, index: int) -> dict:
    """Return the store with face ``index`` chosen for photo ``sha``."""
    items = store_items(store)
    for item in items:
        if item["sha"] == sha:
            item["face"] = int(index)
    return {"items": items}


def remove_photo(store: object, sha: str) -> dict:
    """Return the store without photo ``sha`` (the cache keeps it for others)."""
    return {"items": [item for item in store_items(store) if item["sha"] != sha]}


# -- wiring -----------------------------------------------------------------------------


def register(app: Dash, service: Face3DService) -> None:
    """Register the Upload tab's callbacks."""

    def thumb_url(sha: str) -> str:
        return app.get_relative_path(f"/face3d/thumb/{sha}.jpg")

    @app.callback(
        Output(ids.UPLOADS_STORE, "data", allow_duplicate=True),
        Output(ids.UPLOAD_MESSAGES, "children"),
        Output(ids.UPLOAD, "contents"),
        Input(ids.UPLOAD, "contents"),
        State(ids.UPLOAD, "filename"),
        State(ids.UPLOADS_STORE, "data"),
        prevent_initial_call=True,
    )
    def _on_upload(contents, filenames, store):
        if not contents:
            raise PreventUpdate
        new_store, messages = handle_upload(service, contents, filenames, store, session=current_session())
        return new_store, messages, None

    @app.callback(
        Output(ids.UPLOAD_REJECTED_MESSAGES, "children"),
        Input(ids.UPLOAD_REJECTED_STORE, "data"),
        prevent_initial_call=True,
    )
    def _on_rejected(rejected):
        return rejected_messages(rejected)

    @app.callback(
        Output(ids.GALLERY, "children"),
        Output(ids.GALLERY_COUNT, "children"),
        Input(ids.UPLOADS_STORE, "data"),
    )
    def _on_store(store):
        return render_gallery(service, store, thumb_url, session=current_session())

    @app.callback(
        Output(ids.UPLOADS_STORE, "data", allow_duplicate=True),
        Input({"type": ids.FACE_BOX, "sha": ALL, "index": ALL}, "n_clicks"),
        State(ids.UPLOADS_STORE, "data"),
        prevent_initial_call=True,
    )
    def _on_face_box(_clicks, store):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate
        return pick_face(store, trigger["sha"], trigger["index"])

    @app.callback(
        Output(ids.UPLOADS_STORE, "data", allow_duplicate=True),
        Input({"type": ids.REMOVE_UPLOAD, "sha": ALL}, "n_clicks"),
        State(ids.UPLOADS_STORE, "data"),
        prevent_initial_call=True,
    )
    def _on_remove(_clicks, store):
        trigger = ctx.triggered_id
        if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate
        return remove_photo(store, trigger["sha"])

    @app.callback(
        Output(ids.TABS, "value", allow_duplicate=True),
        Input({"type": ids.UPLOAD_AGAIN, "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def _on_upload_again(_clicks):
        # the "Upload again" button of a "photo no longer available" alert, on any tab
        if not ctx.triggered or not ctx.triggered[0].get("value"):
            raise PreventUpdate
        return ids.TAB_UPLOAD

    @app.callback(
        Output(ids.UPLOADS_STORE, "data", allow_duplicate=True),
        Output(ids.UPLOAD_MESSAGES, "children", allow_duplicate=True),
        Input(ids.CLEAR_ALL, "n_clicks"),
        prevent_initial_call=True,
    )
    def _on_clear(n_clicks):
        if not n_clicks:
            raise PreventUpdate
        return {"items": []}, no_update
