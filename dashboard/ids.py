"""Every component id of the dashboard, in one place.

Layout and callbacks import these constants instead of repeating strings, so a renamed id
cannot silently break a callback. Pattern-matching ids are built by the helper functions at
the bottom.
"""

from __future__ import annotations

# -- shell ------------------------------------------------------------------------------
NAVBAR = "navbar"
TABS = "tabs"
TAB_UPLOAD = "tab-upload"
TAB_DEPTH = "tab-depth"
TAB_MODEL3D = "tab-model3d"
TAB_COMPARE = "tab-compare"
ALERTS = "alerts"
#: Browser-side keys of the uploaded photos (localStorage): ``{"items": [{"sha": str, "face": int}]}``.
UPLOADS_STORE = "uploads-store"
#: The prepared download's link ``{"url", "filename", "size"}``: the page follows it (``face3d.startDownload``).
DOWNLOAD = "download"
#: "Preparing ..." while a download is being made.
DOWNLOAD_STATUS = "download-status"
#: The last download the page started ``{"filename", "at"}`` (written by ``face3d.startDownload``).
DOWNLOAD_STARTED = "download-started"
#: A hidden box that receives a tiny graph while the browser is idle after the page loaded, so
#: plotly.js is loaded and compiled then, not at the first switch to a tab with a figure.
PAGE_WARMUP = "page-warmup"
#: Set by ``assets/face3d.js`` (``requestIdleCallback``) when the browser is idle after the page loaded.
PAGE_WARMUP_STORE = "page-warmup-store"
#: The browser's window: ``{"phone": bool}`` (at most ``PAGE_CONFIG["phone_max_px"]`` wide), set by
#: ``assets/face3d.js`` at the start and when a resize crosses that width.
PAGE_VIEWPORT = "page-viewport"
#: What ``assets/face3d.js`` needs to know of the layout: ``{"narrow_max_px", "phone_max_px", "reveal": {store: box}}``.
PAGE_CONFIG = "page-config"

# -- upload tab -------------------------------------------------------------------------
UPLOAD = "upload"
UPLOAD_MESSAGES = "upload-messages"
UPLOAD_REJECTED_MESSAGES = "upload-rejected-messages"
#: Files too large to send, which ``dcc.Upload`` would drop silently: the upload size guard in
#: ``assets/face3d.js`` writes ``{"files": [{"name", "size"}], "at": ms}`` here (via ``set_props``,
#: with this id spelled out) when files over the ``data-max-bytes`` of the ``.face3d-upload-guard``
#: element are dropped or chosen.
UPLOAD_REJECTED_STORE = "upload-rejected-store"
GALLERY = "gallery"
GALLERY_COUNT = "gallery-count"
CLEAR_ALL = "clear-all"

# -- camera (Upload tab; assets/face3d_camera.js spells these ids out) -------------------
#: Opens the browser's camera (the camera panel appears above the upload card).
CAMERA_START = "camera-start"
#: One sentence under the camera button when the camera cannot be used (and what to do).
CAMERA_MESSAGE = "camera-message"
#: The camera panel: hidden until the camera is open; ``data-colormap`` is the Depth tab's colour map.
CAMERA_PANEL = "camera-panel"
CAMERA_VIDEO = "camera-video"
#: The face crop of the live view, drawn over the preview.
CAMERA_CROP_BOX = "camera-crop-box"
#: Takes a photo: it goes through the upload path like a file (``dcc.Upload`` contents).
CAMERA_CAPTURE = "camera-capture"
CAMERA_SWITCH = "camera-switch"
CAMERA_CLOSE = "camera-close"
CAMERA_STATUS = "camera-status"
#: Live depth on / off (a toggle button, ``aria-pressed``).
LIVE_START = "live-start"
#: The live depth picture (a canvas); ``data-frames`` counts the depth frames drawn.
LIVE_DEPTH = "live-depth"
LIVE_PLACEHOLDER = "live-placeholder"
LIVE_PRECISION = "live-precision"
LIVE_LEGEND = "live-legend"
LIVE_STATS = "live-stats"

# Pattern-matching types (see the helpers below).
FACE_BOX = "face-box"
REMOVE_UPLOAD = "remove-upload"
#: The remove (x) button of a comparison item's chip; its index is the item's key.
COMPARE_ITEM_REMOVE = "compare-item-remove"
#: The "Upload again" button of a "photo no longer available" alert (on any tab).
UPLOAD_AGAIN = "upload-again"

# -- shared choice of face and model --------------------------------------------------
DEPTH_FACE = "depth-face"
DEPTH_MODEL = "depth-model"
MODEL3D_FACE = "model3d-face"
MODEL3D_MODEL = "model3d-model"
#: The Compare tab's depth models (several: one face under several networks).
COMPARE_MODELS = "compare-models"
DEPTH_MODEL_INFO = "depth-model-info"
MODEL3D_MODEL_INFO = "model3d-model-info"
COMPARE_MODEL_INFO = "compare-model-info"
#: Exact (fp32) or Fast (bf16) depth maps; kept in sync across the Depth and 3D tabs like the model.
DEPTH_PRECISION = "depth-precision"
MODEL3D_PRECISION = "model3d-precision"
#: The Compare tab's precisions (both may be chosen: an item per precision).
COMPARE_PRECISIONS = "compare-precisions"

# -- depth tab --------------------------------------------------------------------------
DEPTH_GENERATE = "depth-generate"
DEPTH_COLORMAP = "depth-colormap"
DEPTH_RESULT_STORE = "depth-result-store"
DEPTH_EMPTY = "depth-empty"
DEPTH_RESULTS = "depth-results"
DEPTH_ORIGINAL_GRAPH = "depth-original-graph"
DEPTH_MAP_GRAPH = "depth-map-graph"
#: The depth map's column (brought into view on a phone when a depth map arrives).
DEPTH_MAP_COL = "depth-map-col"
DEPTH_CAPTION = "depth-caption"
DEPTH_DOWNLOAD_PNG8 = "depth-download-png8"
DEPTH_DOWNLOAD_PNG16 = "depth-download-png16"
DEPTH_DOWNLOAD_NPY = "depth-download-npy"

# -- 3D model tab -----------------------------------------------------------------------
MODEL3D_GENERATE = "model3d-generate"
MODEL3D_SOURCE_STORE = "model3d-source-store"
#: The 3D view's camera as the user left it (``{"camera": dict | None, "rev": int}``), kept by the browser.
MODEL3D_VIEW_STORE = "model3d-view-store"
MODEL3D_SMOOTHING = "model3d-smoothing"
MODEL3D_DENSITY = "model3d-density"
MODEL3D_DEPTH_SCALE = "model3d-depth-scale"
MODEL3D_DISPLAY = "model3d-display"
MODEL3D_COLORS = "model3d-colors"
MODEL3D_CAMERA_FRONT = "model3d-camera-front"
MODEL3D_CAMERA_SIDE = "model3d-camera-side"
MODEL3D_CAMERA_TOP = "model3d-camera-top"
MODEL3D_GRAPH = "model3d-graph"
#: The card of the 3D view (brought into view on a phone when a model arrives).
MODEL3D_VIEW_CARD = "model3d-view-card"
MODEL3D_EMPTY = "model3d-empty"
MODEL3D_RESULTS = "model3d-results"
MODEL3D_STATS = "model3d-stats"
MODEL3D_DOWNLOAD_PLY = "model3d-download-ply"
MODEL3D_DOWNLOAD_OBJ = "model3d-download-obj"
MODEL3D_DOWNLOAD_GLB = "model3d-download-glb"
MODEL3D_DOWNLOAD_STL = "model3d-download-stl"
#: Field of view: the "auto (EXIF)" switch and the slider that overrides it.
MODEL3D_FOV_AUTO = "model3d-fov-auto"
MODEL3D_FOV = "model3d-fov"
MODEL3D_FOV_INFO = "model3d-fov-info"
#: Click to measure: ``{"model": model key, "points": [[x, y, z], ...]}`` (0 to 2 picked points, mm).
MODEL3D_MEASURE_STORE = "model3d-measure-store"
#: One pick on the 3D view, made by ``assets/face3d.js`` from a press (not a drag): ``{"x", "y", "z", "at"}``
#: (mm, ms) plus ``i``, ``j``, ``k`` (the triangle) on a mesh. The JavaScript spells this id out.
MODEL3D_MEASURE_CLICK = "model3d-measure-click"
MODEL3D_MEASURE_STATUS = "model3d-measure-status"
MODEL3D_MEASURE_CLEAR = "model3d-measure-clear"
MODEL3D_MEASURE_TABLE = "model3d-measure-table"
MODEL3D_DOWNLOAD_MEASURE_CSV = "model3d-download-measure-csv"
MODEL3D_DOWNLOAD_MEASURE_JSON = "model3d-download-measure-json"
MODEL3D_RELIEF_WIDTH = "model3d-relief-width"
MODEL3D_RELIEF_BASE = "model3d-relief-base"
MODEL3D_RELIEF_SCALE = "model3d-relief-scale"
MODEL3D_RELIEF_INFO = "model3d-relief-info"
MODEL3D_DOWNLOAD_RELIEF_STL = "model3d-download-relief-stl"
MODEL3D_DOWNLOAD_RELIEF_3MF = "model3d-download-relief-3mf"
MODEL3D_DOWNLOAD_REPORT = "model3d-download-report"

# -- compare tab ------------------------------------------------------------------------
COMPARE_FACES = "compare-faces"
#: The items to compare (``[{"sha", "model", "precision"}]``): the chosen faces x models x precisions,
#: less those removed; shown as chips.
COMPARE_ITEMS_STORE = "compare-items-store"
#: Items the user removed from the current choice: ``{"for": choice signature, "keys": [item key]}``.
COMPARE_REMOVED_STORE = "compare-removed-store"
COMPARE_ITEMS = "compare-items"
COMPARE_ITEMS_NOTE = "compare-items-note"
COMPARE_RUN = "compare-run"
#: Items left out of the last comparison (their network's weights are missing), with the usual help.
COMPARE_SKIPPED = "compare-skipped"
#: The two items of the difference map (indices into the comparison) and the button that swaps them.
COMPARE_PAIR_FIRST = "compare-pair-first"
COMPARE_PAIR_SECOND = "compare-pair-second"
COMPARE_PAIR_SWAP = "compare-pair-swap"
COMPARE_RESULT_STORE = "compare-result-store"
COMPARE_PAGE = "compare-page"
COMPARE_EMPTY = "compare-empty"
COMPARE_RESULTS = "compare-results"
COMPARE_3D_GRAPH = "compare-3d-graph"
#: The box around the comparison's 3D views; its height follows the number of rows of views.
COMPARE_3D_BOX = "compare-3d-box"
COMPARE_3D_NOTE = "compare-3d-note"
COMPARE_PROFILES_GRAPH = "compare-profiles-graph"
COMPARE_DIFF_GRAPH = "compare-diff-graph"
#: The box around the difference map; its height follows the map's aspect ratio.
COMPARE_DIFF_BOX = "compare-diff-box"
COMPARE_PAIR_SECTION = "compare-pair-section"
COMPARE_METRICS = "compare-metrics"
COMPARE_CAMERA_SYNC = "compare-camera-sync"
COMPARE_MEASURE_TABLE = "compare-measure-table"
COMPARE_DOWNLOAD_MEASURE_CSV = "compare-download-measure-csv"
COMPARE_DOWNLOAD_MEASURE_JSON = "compare-download-measure-json"
COMPARE_DOWNLOAD_REPORT = "compare-download-report"

# -- folding sections of the settings (open on wide screens, folded on narrow ones) -----
DEPTH_SECTIONS = "depth-sections"
MODEL3D_SECTIONS = "model3d-sections"
COMPARE_SECTIONS = "compare-sections"
SECTIONS = (DEPTH_SECTIONS, MODEL3D_SECTIONS, COMPARE_SECTIONS)

# -- background jobs (one panel per tab) ----------------------------------------------
JOB_PREFIXES = ("depth", "model3d", "compare")


def job_store(prefix: str) -> str:
    """Id of the store holding the running job's id for one tab."""
    return f"{prefix}-job-store"


def job_interval(prefix: str) -> str:
    """Id of the interval that polls a tab's job."""
    return f"{prefix}-job-interval"


def job_progress(prefix: str) -> str:
    """Id of a tab's progress bar."""
    return f"{prefix}-job-progress"


def job_cancel(prefix: str) -> str:
    """Id of a tab's Cancel button."""
    return f"{prefix}-job-cancel"


def job_panel(prefix: str) -> str:
    """Id of the container of a tab's progress bar and Cancel button."""
    return f"{prefix}-job-panel"


def job_message(prefix: str) -> str:
    """Id of the text under a tab's progress bar."""
    return f"{prefix}-job-message"


def face_box(sha: str, index: int) -> dict:
    """Pattern-matching id of the clickable box of face ``index`` on a gallery thumbnail."""
    return {"type": FACE_BOX, "sha": sha, "index": index}


def remove_upload(sha: str) -> dict:
    """Pattern-matching id of a gallery card's Remove button."""
    return {"type": REMOVE_UPLOAD, "sha": sha}
