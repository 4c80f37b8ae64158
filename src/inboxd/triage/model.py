"""The small model trained on the user's own mail, for what the rules leave unsure.

Text features are hashed (nothing to store but coefficients) and fed to a linear classifier
with logistic loss trained by SGD (one-vs-rest). A model is stored as one bytes blob without
pickle: a versioned JSON header and numpy arrays (``np.save``, ``allow_pickle=False``).
scikit-learn and numpy are imported inside the functions: importing this module stays cheap
for the web process.
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from inboxd.errors import InboxdError
from inboxd.triage.classify import UNSURE
from inboxd.triage.types import Decision, Mail
from inboxd.vocabulary import BULK_CATEGORIES, Category, TriageSource

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "CONFIDENCE_CAP",
    "MIN_SAMPLES",
    "InvalidModel",
    "Model",
    "combine",
    "features",
    "train",
]

#: Fewer labelled messages than this teach nothing worth trusting.
MIN_SAMPLES = 40
#: A category needs this many examples to be learned; rarer ones are left out.
MIN_PER_CLASS = 3
#: The most confidence a model's guess gets: it never sounds as sure as a rule.
CONFIDENCE_CAP = 0.85
#: Below this probability the guess is not worth acting on.
MIN_PROBABILITY = 0.5

#: What features() produces; a blob made for another version is refused (retrain).
FEATURES_VERSION = 1
_FORMAT_VERSION = 1
_MAGIC = b"INBOXD-MODEL\n"
_N_FEATURES = 2**18
_BODY_CHARS = 1000
_MAX_HEADER_TOKENS = 48
_MAX_BLOB = 16 * 1024 * 1024
_ALPHA = 1e-5
_EPOCHS = 10
#: Coefficients smaller than this are dropped from the blob (they move no decision).
_PRUNE = 1e-3
#: The most hashed columns a blob keeps: 50,000 x (10 labels x float16 + int32) ~ 1.2 MB.
_MAX_COLUMNS = 50_000

#: Header fields every message has: their presence says nothing.
_COMMON_HEADERS = frozenset(
    {
        "received",
        "date",
        "from",
        "to",
        "cc",
        "subject",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "return-path",
        "delivered-to",
        "x-original-to",
        "envelope-to",
    }
)
_NON_WORD = re.compile(r"[^a-z0-9]+")


class InvalidModel(InboxdError):
    """The stored model is malformed or was made by another version; retrain it."""


@lru_cache(maxsize=16384)
def _tok(prefix: str, value: str) -> str:
    # Cached: header names, domains and content types repeat from message to message.
    # Meta tokens are made of word characters only, so the vectorizer's word pattern keeps
    # them whole; the double underscore keeps them apart from words of the text.
    return prefix + "__" + _NON_WORD.sub("_", value.lower()).strip("_")[:60]


def features(mail: Mail) -> str:
    """The text the model reads of ``mail``: subject, sender tokens, header signals as
    tokens (``h__list_id``, ``ct__text_calendar``, ``at__pdf``...) and the body's start."""
    out: list[str] = [mail.subject]
    _sender_tokens(mail, out)
    _header_tokens(mail, out)
    out.extend(_tok("ct", ct) for ct in set(mail.content_types))
    out.extend(_tok("at", name.rpartition(".")[2] or "none") for name in mail.attachments)
    if mail.has_html:
        out.append("html__yes")
    out.extend(_tok("fo", folder) for folder in mail.folders)
    out.extend(_tok("lb", label) for label in mail.labels)
    out.extend(_tok("fl", flag) for flag in mail.flags)
    out.append(mail.text[:_BODY_CHARS])
    return "\n".join(out)


def _sender_tokens(mail: Mail, out: list[str]) -> None:
    local, _, domain = (mail.from_addr or "").lower().rpartition("@")
    if domain:
        out.append(_tok("fd", domain))
        parts = domain.split(".")
        if len(parts) > 2:
            out.append(_tok("fd", ".".join(parts[-2:])))
        out.append(_tok("fu", local))
        out.extend(_tok("fw", word) for word in _NON_WORD.split(local) if word)
    else:
        out.append("fd__none")
    out.append("fn__yes" if mail.from_name else "fn__no")
    recipients = len(mail.to) + len(mail.cc)
    out.append(_RECIPIENTS[min(recipients, len(_RECIPIENTS) - 1)])
    if mail.cc:
        out.append("cc__yes")


#: Token for 0, 1, 2-5 and more recipients.
_RECIPIENTS = ("rc__0", "rc__1", *(["rc__few"] * 4), "rc__many")


def _header_tokens(mail: Mail, out: list[str]) -> None:
    names = [name for name in mail.headers if name not in _COMMON_HEADERS]
    out.extend(_tok("h", name) for name in names[:_MAX_HEADER_TOKENS])
    for name in ("precedence", "auto-submitted", "x-auto-response-suppress"):
        value = mail.header(name)
        if value:
            out.append(_tok("hv_" + name.replace("-", "_"), value.split(";")[0]))
    return_path = mail.header("return-path")
    if return_path is not None and return_path.strip() in ("<>", ""):
        out.append("hv__null_return_path")
    list_id = mail.header("list-id")
    if list_id:
        out.append(_tok("li", list_id.rpartition("<")[2].rstrip(">")))
    message_id = mail.header("message-id")
    if message_id and "@" in message_id:
        out.append(_tok("mi", message_id.rpartition("@")[2].rstrip(">")))


@lru_cache(maxsize=4)
def _vectorizer(n_features: int) -> Any:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=n_features,
        lowercase=True,
        # The same tokens as scikit-learn's default \b\w\w+\b (maximal runs of two or more
        # word characters), found twice as fast.
        token_pattern=r"\w{2,}",
        ngram_range=(1, 1),
        binary=True,
        norm="l2",
        alternate_sign=False,
        dtype=_float32(),
    )


def _float32() -> Any:
    import numpy as np

    return np.float32


@dataclass(slots=True, eq=False)
class Model:
    """A trained model: its categories and the coefficients of the hashed features."""

    labels: tuple[Category, ...]
    #: Hashed feature indices that carry a weight (sorted, int32).
    columns: npt.NDArray[np.int32]
    #: One row per label, one column per entry of ``columns`` (float32).
    coef: npt.NDArray[np.float32]
    intercept: npt.NDArray[np.float32]
    samples: int = 0
    n_features: int = _N_FEATURES
    _weights: Any = field(default=None, init=False, repr=False)

    def predict(self, mails: Sequence[Mail]) -> list[tuple[Category, float]]:
        """The likeliest category of each message with its probability."""
        if not mails:
            return []
        import numpy as np

        x = _vectorizer(self.n_features).transform([features(m) for m in mails])
        scores = (x @ self._weight_matrix()).toarray().astype(np.float64) + self.intercept
        # One-vs-rest logistic scores, normalised across labels (as scikit-learn does).
        probabilities = 1.0 / (1.0 + np.exp(-np.clip(scores, -30.0, 30.0)))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        best = probabilities.argmax(axis=1)
        top = probabilities[np.arange(len(mails)), best]
        return [(self.labels[int(i)], float(p)) for i, p in zip(best, top, strict=True)]

    def _weight_matrix(self) -> Any:
        # A sparse (n_features x labels) matrix, built once: only kept columns have rows.
        if self._weights is not None:
            return self._weights
        import numpy as np
        from scipy import sparse

        n_labels = len(self.labels)
        rows = np.repeat(self.columns, n_labels)
        cols = np.tile(np.arange(n_labels, dtype=np.int32), len(self.columns))
        data = self.coef.T.reshape(-1)
        self._weights = sparse.csr_matrix(
            (data, (rows, cols)), shape=(self.n_features, n_labels), dtype=np.float32
        )
        return self._weights

    def to_bytes(self) -> bytes:
        """The model as one blob: magic, a JSON header, then the numpy arrays."""
        import numpy as np

        header = {
            "format": _FORMAT_VERSION,
            "features": FEATURES_VERSION,
            "labels": [str(label) for label in self.labels],
            "n_features": self.n_features,
            "samples": self.samples,
        }
        head = json.dumps(header, sort_keys=True).encode()
        out = io.BytesIO()
        out.write(_MAGIC)
        out.write(struct.pack(">I", len(head)))
        out.write(head)
        for array in (
            self.columns.astype(np.int32),
            self.coef.astype(np.float16),
            self.intercept.astype(np.float32),
        ):
            np.save(out, array, allow_pickle=False)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> Model:
        """A model from :meth:`to_bytes`'s blob; :class:`InvalidModel` for anything else."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) > _MAX_BLOB:
            raise InvalidModel("not a model blob (wrong type or too large)")
        data = bytes(data)
        if not data.startswith(_MAGIC):
            raise InvalidModel("not a model blob (no magic)")
        offset = len(_MAGIC)
        if len(data) < offset + 4:
            raise InvalidModel("model blob truncated in its header")
        (size,) = struct.unpack(">I", data[offset : offset + 4])
        offset += 4
        if size > 65536 or len(data) < offset + size:
            raise InvalidModel("model blob truncated in its header")
        try:
            header = json.loads(data[offset : offset + size])
        except ValueError as exc:
            raise InvalidModel(f"model header is not JSON: {exc}") from None
        labels, n_features, samples = _check_header(header)
        columns, coef, intercept = _read_arrays(data[offset + size :], len(labels), n_features)
        return cls(labels, columns, coef, intercept, samples, n_features)


def _read_arrays(data: bytes, n: int, n_features: int) -> tuple[Any, Any, Any]:
    import numpy as np

    stream = io.BytesIO(data)
    try:
        columns = np.load(stream, allow_pickle=False)
        coef = np.load(stream, allow_pickle=False)
        intercept = np.load(stream, allow_pickle=False)
    except (ValueError, EOFError, OSError) as exc:
        raise InvalidModel(f"model arrays are malformed: {exc}") from None
    if stream.read(1):
        raise InvalidModel("trailing bytes after the model arrays")
    if columns.dtype != np.int32 or columns.ndim != 1:
        raise InvalidModel("model columns must be a 1-d int32 array")
    if coef.dtype != np.float16 or coef.shape != (n, len(columns)):
        raise InvalidModel(f"model coefficients must be float16 of shape {(n, len(columns))}")
    if intercept.dtype != np.float32 or intercept.shape != (n,):
        raise InvalidModel(f"model intercepts must be float32 of shape {(n,)}")
    if len(columns) and (
        columns[0] < 0 or columns[-1] >= n_features or np.any(np.diff(columns) <= 0)
    ):
        raise InvalidModel("model columns must be sorted, unique and in range")
    coef32 = coef.astype(np.float32)
    if not (np.all(np.isfinite(coef32)) and np.all(np.isfinite(intercept))):
        raise InvalidModel("model coefficients must be finite")
    return columns, coef32, intercept


def _check_header(header: object) -> tuple[tuple[Category, ...], int, int]:
    if not isinstance(header, dict):
        raise InvalidModel("model header must be a JSON object")
    if header.get("format") != _FORMAT_VERSION:
        raise InvalidModel(f"model format {header.get('format')!r} is not {_FORMAT_VERSION}")
    if header.get("features") != FEATURES_VERSION:
        raise InvalidModel(
            f"model made for features version {header.get('features')!r}, "
            f"not {FEATURES_VERSION}: retrain it"
        )
    raw_labels = header.get("labels")
    if not isinstance(raw_labels, list) or len(raw_labels) < 2:
        raise InvalidModel("model labels must be a list of at least two categories")
    try:
        labels = tuple(Category(label) for label in raw_labels)
    except ValueError as exc:
        raise InvalidModel(f"model label is not a category: {exc}") from None
    if len(set(labels)) != len(labels):
        raise InvalidModel("model labels repeat")
    n_features = header.get("n_features")
    if not isinstance(n_features, int) or not 2**10 <= n_features <= 2**22:
        raise InvalidModel("model n_features out of range")
    samples = header.get("samples", 0)
    if not isinstance(samples, int) or samples < 0:
        raise InvalidModel("model samples must be a count")
    return labels, n_features, samples


def train(
    samples: Sequence[tuple[Mail, Category]], weights: Sequence[float] | None = None
) -> Model | None:
    """A model learned from labelled mail, or None when there is too little to learn from
    (fewer than MIN_SAMPLES usable samples or fewer than two categories). ``weights``
    (one per sample) may count a user's correction more than a rule's decision."""
    if weights is not None and len(weights) != len(samples):
        raise ValueError("train: one weight per sample")
    counts = Counter(category for _, category in samples)
    kept = {category for category, n in counts.items() if n >= MIN_PER_CLASS}
    chosen = [i for i, (_, category) in enumerate(samples) if category in kept]
    usable = [samples[i] for i in chosen]
    if len(usable) < MIN_SAMPLES or len(kept) < 2:
        return None
    import numpy as np
    from scipy import sparse
    from sklearn.linear_model import SGDClassifier

    labels = tuple(sorted(kept, key=list(Category).index))
    index = {label: i for i, label in enumerate(labels)}
    vectorizer = _vectorizer(_N_FEATURES)
    # Vectorized in chunks: the feature texts of 20,000 messages alone would be ~40 MB.
    x = sparse.vstack(
        [
            vectorizer.transform([features(mail) for mail, _ in usable[i : i + 1000]])
            for i in range(0, len(usable), 1000)
        ],
        format="csr",
    )
    # Fit on the hashed columns that occur only: the solver's memory is then a few MB per
    # vector instead of n_features x labels (L-BFGS keeps ten pairs of them).
    used = np.unique(x.indices).astype(np.int32)
    position = np.zeros(_N_FEATURES, dtype=np.int32)
    position[used] = np.arange(len(used), dtype=np.int32)
    x = sparse.csr_matrix((x.data, position[x.indices], x.indptr), shape=(x.shape[0], len(used)))
    y = np.fromiter((index[category] for _, category in usable), dtype=np.int64)
    classifier = SGDClassifier(
        loss="log_loss",
        alpha=_ALPHA,
        class_weight="balanced",
        max_iter=_EPOCHS,
        tol=None,
        random_state=0,
    )
    sample_weight = None
    if weights is not None:
        sample_weight = np.fromiter((weights[i] for i in chosen), dtype=np.float64)
        if not (np.all(np.isfinite(sample_weight)) and np.all(sample_weight > 0)):
            raise ValueError("train: weights must be positive numbers")
    classifier.fit(x, y, sample_weight=sample_weight)
    coef = np.asarray(classifier.coef_, dtype=np.float32)
    intercept = np.asarray(classifier.intercept_, dtype=np.float32)
    if len(labels) == 2:
        # A binary model keeps one row, for class 1; rows (-w, w) give the same
        # probabilities under one-vs-rest normalisation, so predict treats all alike.
        coef = np.vstack([-coef[0], coef[0]])
        intercept = np.array([-intercept[0], intercept[0]], dtype=np.float32)
    # The columns that weigh most, at most _MAX_COLUMNS of them: 20,000 messages may use
    # most of the 2^18 hashed columns, and a blob of all of them would be ~6 MB.
    strength = np.abs(coef).max(axis=0)
    keep = np.flatnonzero(strength >= _PRUNE)
    if len(keep) > _MAX_COLUMNS:
        keep = np.sort(keep[np.argsort(strength[keep])[-_MAX_COLUMNS:]])
    return Model(labels, used[keep], coef[:, keep].copy(), intercept, len(usable), _N_FEATURES)


def combine(
    decision: Decision, predicted: tuple[Category, float], unsure: float = UNSURE
) -> Decision:
    """The decision after the model's guess: only an unsure decision (confidence below
    ``unsure``, default classify.UNSURE) changes; never to a bulk category when direct."""
    category, probability = predicted
    if decision.confidence >= unsure or probability < MIN_PROBABILITY:
        return decision
    if decision.direct and category in BULK_CATEGORIES:
        return decision
    confidence = min(probability, CONFIDENCE_CAP)
    if confidence <= decision.confidence:
        return decision
    percent = round(probability * 100)
    if category == decision.category:
        reason = f"learned from your corrections: agrees, {category} ({percent} %)"
    else:
        reason = f"learned from your corrections: looks like {category} ({percent} %)"
    return replace(
        decision,
        category=category,
        confidence=round(confidence, 3),
        reasons=(*decision.reasons, reason),
        source=TriageSource.MODEL,
    )
