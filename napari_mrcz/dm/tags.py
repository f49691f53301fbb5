"""The tag tree of a Gatan DigitalMicrograph file (DM3 or DM4), parsed without bulk data.

A DM file is a header and one root tag group. A group holds tags, each either a
group again or a data tag; a data tag describes its value by an "info array" of
type codes and then holds the value itself::

    header     version (int32 BE, 3 or 4), root length (uint32 BE for DM3, uint64 BE
               for DM4), byte order of the data (int32 BE, 1 = little-endian)
    group      sorted (uint8), open (uint8), number of tags (uint32/uint64 BE)
    tag        kind (uint8: 20 group, 21 data), name length (uint16 BE), name,
               [DM4 only: length of the rest of the tag, uint64 BE], then the group
               body, or for data: '%%%%', info length n (uint32/uint64 BE),
               n info words (uint32/uint64 BE) and the value in the data byte order

The parser walks the file through a read-only memory map. Scalars, strings, structs
and small arrays are decoded on the way; a larger array becomes an :class:`ArrayRef`
(offset, dtype, count) that is skipped, so that parsing a file of many gigabytes
touches only its tags. Every count and size is checked against the file size before
anything is read or allocated, nesting is capped at :data:`MAX_DEPTH` levels, and any
inconsistency is reported as :class:`~napari_mrcz.errors.MRCZFormatError`.
"""

from __future__ import annotations

import logging
import mmap
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from napari_mrcz.errors import MRCZFormatError
from napari_mrcz.files import describe_content, open_regular

logger = logging.getLogger(__name__)

#: Tag kinds.
GROUP_TAG, DATA_TAG = 20, 21
#: Info-array type codes that are not simple values.
STRUCT, STRING, ARRAY = 15, 18, 20
#: Simple value type codes -> numpy type (without byte order). Code 8 is a one-byte bool.
SIMPLE_TYPES: dict[int, str] = {
    2: "i2",
    3: "i4",
    4: "u2",
    5: "u4",
    6: "f4",
    7: "f8",
    8: "u1",
    9: "i1",
    10: "u1",
    11: "i8",
    12: "u8",
}
BOOL_CODE = 8
_STRUCT_CHARS = {
    "i1": "b",
    "u1": "B",
    "i2": "h",
    "u2": "H",
    "i4": "i",
    "u4": "I",
    "i8": "q",
    "u8": "Q",
    "f4": "f",
    "f8": "d",
}

#: Deepest nesting of tag groups (and of types inside an info array) we follow.
MAX_DEPTH = 64
#: Arrays up to this many bytes are read while parsing; larger ones are only located.
EAGER_ARRAY_BYTES = 64 * 2**10
#: Longest info array we accept (real tags use a few dozen words at most).
MAX_INFO = 4096
#: Smallest possible group entry and data tag (DM3), to bound declared tag counts.
MIN_TAG_BYTES = 9


@dataclass(frozen=True)
class ArrayRef:
    """Where an array tag's values lie in the file; they are not read while parsing.

    Attributes
    ----------
    offset : int
        Byte offset of the first element.
    dtype : numpy.dtype
        Element type with the file's byte order (structured for arrays of structs).
    count : int
        Number of elements.
    """

    offset: int
    dtype: np.dtype
    count: int

    @property
    def nbytes(self) -> int:
        """Size of the values in bytes."""
        return self.count * self.dtype.itemsize

    def describe(self) -> str:
        """A short summary such as ``'<array uint8 (123456,)>'``."""
        return describe_array(self.dtype, (self.count,))


def describe_array(dtype: np.dtype, shape: tuple[int, ...]) -> str:
    """Summarise a large array for metadata: ``'<array uint8 (123456,)>'``."""
    name = "struct" if dtype.names else dtype.newbyteorder("=").name
    return f"<array {name} {tuple(shape)}>"


@dataclass(frozen=True)
class DMHeader:
    """The 12-byte (DM3) or 16-byte (DM4) file header.

    Attributes
    ----------
    version : int
        3 or 4.
    root_length : int
        The root length the header declares (not relied upon).
    byteorder : str
        ``'<'`` or ``'>'``: byte order of tag values and image data.
    size : int
        Header size in bytes; the root group starts there.
    """

    version: int
    root_length: int
    byteorder: str
    size: int


def read_header(raw: bytes | mmap.mmap, path: str | None) -> DMHeader:
    """Parse and check the header at the start of ``raw``.

    Raises
    ------
    MRCZFormatError
        If the file is too short or is not DM3/DM4.
    """
    if len(raw) < 16:
        raise MRCZFormatError(path, _not_dm(raw, f"{len(raw)} bytes are too few for a DM file"))
    version = struct.unpack_from(">i", raw, 0)[0]
    if version == 3:
        root_length, order = struct.unpack_from(">Ii", raw, 4)
        size = 12
    elif version == 4:
        root_length, order = struct.unpack_from(">Qi", raw, 4)
        size = 16
    else:
        raise MRCZFormatError(
            path, _not_dm(raw, f"not a DM3/DM4 file: its version field is {version}")
        )
    if order not in (0, 1):
        raise MRCZFormatError(path, f"the DM byte-order field is {order}, not 0 or 1")
    return DMHeader(version, root_length, "<" if order == 1 else ">", size)


def _not_dm(raw: bytes | mmap.mmap, problem: str) -> str:
    """``problem``, or what the file is instead if that is known (text, MRC, ...)."""
    head = bytes(raw[:4096])
    seen = describe_content(head)  # an MRC file named .dm4: see napari_mrcz.formats.identify
    return f"not a DM3/DM4 file: {seen}" if seen is not None else problem


class DMTagParser:
    """Parse the tag tree of a DM3 or DM4 file.

    The methods :meth:`parse_group`, :meth:`parse_tag`, :meth:`skip_tag` and
    :meth:`tag_data` (python-mrcz's ``parseTagDir``, ``parseTag``, ``discardTag`` and
    ``retrieveTagData``, see :class:`napari_mrcz.readDM4`) each work at the current
    position of ``f``, the memory map of the file, which is open only while
    :meth:`parse_file` runs.

    Parameters
    ----------
    filename : str or os.PathLike
        The file.
    verbose : bool
        Log each group and tag on this module's logger (level DEBUG).

    Attributes
    ----------
    filename : str
        The file.
    f : mmap.mmap or None
        The open memory map while parsing, else None.
    header : DMHeader or None
        The parsed header.
    tags : dict
        The root tag group after :meth:`parse_file`: names map to sub-dicts (groups)
        or values. Unnamed tags are numbered ``'0'``, ``'1'``, ... in order.
    """

    def __init__(self, filename: str | os.PathLike, verbose: bool = False) -> None:
        self.filename = os.fspath(filename)
        self.verbose = verbose
        self.f: mmap.mmap | None = None
        self.header: DMHeader | None = None
        self.file_size = 0
        self.tags: dict[str, Any] = {}

    # ------------------------------------------------------------------ whole file

    def parse_file(self) -> dict[str, Any]:
        """Read the header and the whole tag tree; return the root group.

        Raises
        ------
        MRCZFormatError
            If the file is damaged, truncated or not DM3/DM4.
        """
        with open_regular(self.filename) as handle:
            self.file_size = os.fstat(handle.fileno()).st_size
            if self.file_size < 16:
                raise MRCZFormatError(
                    self.filename,
                    _not_dm(handle.read(16), f"{self.file_size} bytes are too few for a DM file"),
                )
            self.f = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self.header = read_header(self.f, self.filename)
            self._setup(self.header)
            if self.verbose:
                logger.debug(
                    "%s: DM%d, data byte order %r, %d bytes",
                    self.filename,
                    self.header.version,
                    self.header.byteorder,
                    self.file_size,
                )
            self.tags = self._root()
        except (struct.error, IndexError):
            raise MRCZFormatError(
                self.filename,
                "the tag structure runs past the end of the file (truncated or damaged)",
            ) from None
        finally:
            self.f.close()
            self.f = None
        return self.tags

    def _root(self) -> dict[str, Any]:
        """Parse the root group through :meth:`parse_group` and :meth:`parse_tag`."""
        ntags, pos = self._group_header(self.header.size, "")
        root: dict[str, Any] = {}
        unnamed = 0
        for _ in range(ntags):
            kind = self.f[pos]
            self.f.seek(pos + 1)
            if kind == GROUP_TAG:
                name, value = self.parse_group(b"/")
            elif kind == DATA_TAG:
                name, value = self.parse_tag(b"/")
            else:
                raise self._error(
                    f"unknown tag kind {kind} at byte {pos} in the root group (expected 20 or 21)"
                )
            unnamed = _store(root, name, value, unnamed)
            pos = self.f.tell()
        return root

    def _setup(self, header: DMHeader) -> None:
        wide = header.version == 4
        self._word = struct.Struct(">Q" if wide else ">I")
        self._word_char = "Q" if wide else "I"
        self._length_bytes = 8 if wide else 0
        self._order = header.byteorder
        self._scalars = {
            code: struct.Struct(self._order + _STRUCT_CHARS[char])
            for code, char in SIMPLE_TYPES.items()
        }
        self._dtypes = {code: np.dtype(self._order + char) for code, char in SIMPLE_TYPES.items()}

    def _error(self, problem: str) -> MRCZFormatError:
        return MRCZFormatError(self.filename, problem)

    def _check_room(self, pos: int | None, nbytes: int, what: str) -> None:
        """Refuse ``nbytes`` starting at ``pos`` (or anywhere, for None) past the end."""
        if pos is None:
            if nbytes > self.file_size:
                raise self._error(
                    f"{what} declares {nbytes} bytes, past the end of the file "
                    f"({self.file_size} bytes)"
                )
        elif nbytes < 0 or pos + nbytes > self.file_size:
            raise self._error(
                f"{what} at byte {pos} declares {nbytes} bytes, past the end of "
                f"the file ({self.file_size} bytes)"
            )

    # ------------------------------------------------------------------ groups and tags

    def _tag_name(self, pos: int) -> tuple[str, int]:
        """Read a tag's name length and name at ``pos``; return (name, position after)."""
        length = struct.unpack_from(">H", self.f, pos)[0]
        raw = self.f[pos + 2 : pos + 2 + length]
        if len(raw) != length:
            raise self._error(f"a tag name at byte {pos} runs past the end of the file")
        try:
            name = raw.decode("utf-8")
        except UnicodeDecodeError:
            name = raw.decode("latin-1")
        return name, pos + 2 + length

    def _group_header(self, pos: int, group_name: str) -> tuple[int, int]:
        """Read a group's sorted/open flags and tag count at ``pos``; return (count, after)."""
        ntags = self._word.unpack_from(self.f, pos + 2)[0]
        pos += 2 + self._word.size
        if ntags * MIN_TAG_BYTES > self.file_size - pos:
            raise self._error(
                f"tag group {group_name!r} at byte {pos} declares {ntags} tags, "
                "more than the rest of the file can hold"
            )
        if self.verbose:
            logger.debug("group %r: %d tags at byte %d", group_name, ntags, pos)
        return ntags, pos

    def _group_body(self, pos: int, depth: int, group_name: str) -> tuple[dict[str, Any], int]:
        """Parse the group (at nesting ``depth``) whose sorted/open flags are at ``pos``."""
        if depth > MAX_DEPTH:
            raise self._error(f"tag groups nested deeper than {MAX_DEPTH} levels at byte {pos}")
        ntags, pos = self._group_header(pos, group_name)
        group: dict[str, Any] = {}
        unnamed = 0
        buf = self.f
        for _ in range(ntags):
            name, value, pos = self._entry(pos + 1, buf[pos], depth, group_name)
            unnamed = _store(group, name, value, unnamed)
        return group, pos

    def _entry(self, pos: int, kind: int, depth: int, group_name: str) -> tuple[str, Any, int]:
        """Parse a tag of ``kind`` whose name length is at ``pos``, in a group at ``depth``.

        Returns the name, the value (a dict for a group) and the position after the tag.
        """
        name, pos = self._tag_name(pos)
        end = None
        if self._length_bytes:
            length = self._word.unpack_from(self.f, pos)[0]
            pos += 8
            self._check_room(pos, length, f"tag {name!r}")
            end = pos + length
        if kind == GROUP_TAG:
            value, pos = self._group_body(pos, depth + 1, name)
        elif kind == DATA_TAG:
            value, pos = self._data_tag(pos, name, group_name)
        else:
            raise self._error(
                f"unknown tag kind {kind} before byte {pos} in group "
                f"{group_name!r} (expected 20 or 21)"
            )
        if end is not None and pos != end:
            raise self._error(
                f"tag {name!r} declares that it ends at byte {end} but its "
                f"contents end at byte {pos}"
            )
        return name, value, pos

    def _data_tag(self, pos: int, name: str, group_name: str) -> tuple[Any, int]:
        """Parse a data tag from its '%%%%' delimiter at ``pos``."""
        if self.f[pos : pos + 4] != b"%%%%":
            raise self._error(f"data tag {name!r} at byte {pos} lacks its '%%%%' delimiter")
        ninfo = self._word.unpack_from(self.f, pos + 4)[0]
        pos += 4 + self._word.size
        return self._value(pos, ninfo, name, group_name)

    def _value(self, pos: int, ninfo: int, name: str, group_name: str) -> tuple[Any, int]:
        """Read the info array of ``ninfo`` words at ``pos`` and the value after it."""
        word = self._word.size
        if not 1 <= ninfo <= MAX_INFO or ninfo * word > self.file_size - pos:
            raise self._error(
                f"data tag {name!r} at byte {pos} has an info array of {ninfo} entries"
            )
        infos = struct.unpack_from(f">{ninfo}{self._word_char}", self.f, pos)
        pos += ninfo * word
        code = infos[0]
        scalar = self._scalars.get(code)
        if scalar is not None:  # the common case first: one simple value
            value = scalar.unpack_from(self.f, pos)[0]
            return (bool(value) if code == BOOL_CODE else value), pos + scalar.size
        dtype, used = self._dtype(infos, 0, 0, name)
        if code == ARRAY:
            if used >= ninfo:
                raise self._error(f"array tag {name!r}: its info array ends too early")
            count, element = infos[used], dtype
            nbytes = count * element.itemsize
            self._check_room(pos, nbytes, f"array tag {name!r}")
            if (name == "Data" and group_name == "ImageData") or nbytes > EAGER_ARRAY_BYTES:
                return ArrayRef(pos, element, count), pos + nbytes
            if not element.itemsize:  # elements of no bytes (empty structs): no values
                return np.zeros(0, dtype=element), pos
            raw = self.f[pos : pos + nbytes]
            return self._decode_array(raw, element, count), pos + nbytes
        self._check_room(pos, dtype.itemsize, f"data tag {name!r}")
        if dtype.itemsize:
            value = np.frombuffer(self.f[pos : pos + dtype.itemsize], dtype=dtype)[0]
        else:  # a struct without fields, an empty string: empty, and no bytes to read
            value = np.zeros(1, dtype=dtype)[0]
        if code == STRING:
            return _decode_text(bytes(value)), pos + dtype.itemsize
        return tuple(_plain(field) for field in value.tolist()), pos + dtype.itemsize

    def _dtype(
        self, infos: tuple[int, ...], at: int, depth: int, name: str
    ) -> tuple[np.dtype, int]:
        """Element type described by ``infos[at:]``; return it and the next unused index.

        For an array (20) the element type is returned and the count is left at the
        next index.
        """
        if depth > MAX_DEPTH:
            raise self._error(f"data tag {name!r}: types nested deeper than {MAX_DEPTH}")
        try:
            code = infos[at]
            if code in self._dtypes:
                return self._dtypes[code], at + 1
            if code == STRING:
                length = infos[at + 1]
                self._check_room(None, length, f"string tag {name!r}")
                return np.dtype(f"S{length}"), at + 2
            if code == STRUCT:
                nfields = infos[at + 2]
                if 2 * nfields > len(infos):
                    raise self._error(f"struct tag {name!r} declares {nfields} fields")
                fields, at = [], at + 3
                for _ in range(nfields):
                    field, at = self._dtype(infos, at + 1, depth + 1, name)
                    fields.append(field)
                return np.dtype(
                    {"names": [f"f{k}" for k in range(nfields)], "formats": fields}
                ), at
            if code == ARRAY:
                element, at = self._dtype(infos, at + 1, depth + 1, name)
                if depth == 0:
                    return element, at
                count = infos[at]
                self._check_room(None, count * element.itemsize, f"array in tag {name!r}")
                return np.dtype((element, (count,))), at + 1
        except IndexError:
            raise self._error(f"data tag {name!r}: its info array ends too early") from None
        raise self._error(f"data tag {name!r} has unknown type code {code}")

    def _decode_array(self, raw: bytes, element: np.dtype, count: int) -> Any:
        """Values of a small array read while parsing: text for uint16 arrays."""
        if element.kind == "u" and element.itemsize == 2 and not element.shape:
            return _decode_text(raw, "utf-16-le" if self._order == "<" else "utf-16-be")
        return np.frombuffer(raw, dtype=element, count=count)

    # ------------------------------------------------------------------ one entry at f

    def parse_group(self, parent: bytes = b"/", depth: int = 0) -> tuple[str, dict[str, Any]]:
        """Parse the tag group whose name starts at the current position of ``f``.

        ``f`` must be just past the group's kind byte (20); it is left after the group.

        Parameters
        ----------
        parent : bytes
            Path of the enclosing group, such as ``b'/ImageList/'`` (for logging).
        depth : int
            Nesting depth of the enclosing group (0 for the root).

        Returns
        -------
        (str, dict)
            The group's name and contents.
        """
        name, group, pos = self._entry(self.f.tell(), GROUP_TAG, depth, _last_name(parent))
        if self.verbose:
            logger.debug("tag group %r%s: %d tags", parent, name, len(group))
        self.f.seek(pos)
        return name, group

    def parse_tag(self, parent: bytes = b"/") -> tuple[str, Any]:
        """Parse the data tag whose name starts at the current position of ``f``.

        ``f`` must be just past the tag's kind byte (21); it is left after the tag.

        Parameters
        ----------
        parent : bytes
            Path of the enclosing group, such as ``b'/ImageList/0/ImageData/'``.

        Returns
        -------
        (str, value)
            The tag's name and value (an :class:`ArrayRef` for a large array).
        """
        name, value, pos = self._entry(self.f.tell(), DATA_TAG, 0, _last_name(parent))
        if self.verbose:
            logger.debug("tag %r%s = %r", parent, name, value)
        self.f.seek(pos)
        return name, value

    def skip_tag(self) -> None:
        """Skip the data tag whose name starts at the current position of ``f``."""
        self.f.seek(self._entry(self.f.tell(), DATA_TAG, 0, "")[2])

    def tag_data(self, tag_ninfo: int) -> Any:
        """Read a data tag's info array (``tag_ninfo`` words) and value at ``f``.

        ``f`` must be just past the info-array length; it is left after the value.
        """
        value, pos = self._value(self.f.tell(), int(tag_ninfo), "", "")
        self.f.seek(pos)
        return value


def _last_name(parent: bytes) -> str:
    """The innermost group name of a path such as ``b'/ImageList/0/ImageData/'``."""
    return parent.rstrip(b"/").rsplit(b"/", 1)[-1].decode("latin-1")


def _store(group: dict[str, Any], name: str, value: Any, unnamed: int) -> int:
    """Add a tag to ``group``; return the updated count of unnamed tags.

    Unnamed tags are numbered '0', '1', ... in order; a name already present gets
    ' (2)', ' (3)', ...
    """
    if not name:
        name, unnamed = str(unnamed), unnamed + 1
    if name in group:
        name = _unique_key(group, name)
    group[name] = value
    return unnamed


def _unique_key(group: dict[str, Any], name: str) -> str:
    """``name`` with a suffix ' (2)', ' (3)', ... that ``group`` does not have yet."""
    number = 2
    while f"{name} ({number})" in group:
        number += 1
    return f"{name} ({number})"


def _decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """Decode tag text; DM strings are UTF-16 arrays, single-byte strings utf-8 or latin-1."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        if encoding.startswith("utf-16"):
            return raw.decode(encoding, errors="replace")
        return raw.decode("latin-1")


def _plain(value: Any) -> Any:
    """A struct field as a Python value (bytes of a string field decoded)."""
    return _decode_text(value) if isinstance(value, bytes) else value


def plain_tree(group: dict[str, Any], list_limit: int = 1024) -> dict[str, Any]:
    """The tag tree as plain Python values, for metadata.

    Arrays of up to ``list_limit`` elements become lists (of tuples for structs);
    longer arrays and arrays not read become summaries like ``'<array uint8 (9,)>'``.
    """
    out: dict[str, Any] = {}
    stack = [(group, out)]
    while stack:
        source, target = stack.pop()
        for key, value in source.items():
            if isinstance(value, dict):
                target[key] = {}
                stack.append((value, target[key]))
            elif isinstance(value, ArrayRef):
                target[key] = value.describe()
            elif isinstance(value, np.ndarray):
                if value.size > list_limit:
                    target[key] = describe_array(value.dtype, value.shape)
                elif _holds_bytes(value.dtype):
                    target[key] = [_plain_item(item) for item in value.tolist()]
                else:
                    target[key] = value.tolist()
            else:
                target[key] = value
    return out


def summarised_tags(plain: dict[str, Any]) -> list[str]:
    """Paths of the tags :func:`plain_tree` summarised, but for the images' own data.

    These values are not in the plain tree (so not in JSON meta made from it); the
    pixels of each image (``ImageData/Data``) are summarised too but kept apart.
    """
    found = []
    stack: list[tuple[tuple[str, ...], dict]] = [((), plain)]
    while stack:
        path, group = stack.pop()
        for key, value in group.items():
            if isinstance(value, dict):
                stack.append(((*path, key), value))
            elif (
                isinstance(value, str)
                and value.startswith("<array ")
                and (*path[-1:], key) != ("ImageData", "Data")
            ):
                found.append("/".join((*path, key)))
    return sorted(found)


def _holds_bytes(dtype: np.dtype) -> bool:
    """True if ``dtype`` has a string part (whose values ``tolist`` gives as bytes)."""
    if dtype.subdtype is not None:
        return _holds_bytes(dtype.subdtype[0])
    if dtype.names:
        return any(_holds_bytes(dtype.fields[name][0]) for name in dtype.names)
    return dtype.kind == "S"


def _plain_item(item: Any) -> Any:
    if isinstance(item, tuple):
        return tuple(_plain_item(part) for part in item)
    return _plain(item)
