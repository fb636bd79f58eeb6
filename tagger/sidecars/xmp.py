"""XMP packets as element trees that re-serialise the way they were written.

ElementTree forgets namespace prefixes, where they were declared and the
``<?xpacket?>`` lines around the root. This module keeps all three: the
parser records each element's own ``xmlns`` declarations, the text before and
after the root element is kept verbatim, and ``serialise`` writes every
declaration back where it stood (darktable finds its own sidecars by the
literal ``xmlns:darktable="http://darktable.sf.net/"``).
"""

from __future__ import annotations

import copy
import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

__all__ = [
    "RDF",
    "X",
    "XML",
    "DC",
    "XMP",
    "IPTC_CORE",
    "LR",
    "DIGIKAM",
    "TAGGER",
    "XmpFormatError",
    "Packet",
    "parse",
    "new_packet",
    "serialise",
    "xml_safe",
    "descriptions",
    "property_items",
    "remove_property",
    "append_description",
    "property_kind",
    "set_property",
    "remove_namespace",
    "packet_digest",
    "TIFF",
    "lang_alt",
    "values",
    "property_names",
    "copy_properties",
]

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
X = "adobe:ns:meta/"
XML = "http://www.w3.org/XML/1998/namespace"
DC = "http://purl.org/dc/elements/1.1/"
XMP = "http://ns.adobe.com/xap/1.0/"
IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
LR = "http://ns.adobe.com/lightroom/1.0/"
DIGIKAM = "http://www.digikam.org/ns/1.0/"
TIFF = "http://ns.adobe.com/tiff/1.0/"
#: tagger's own namespace for provenance; ``.invalid`` can never resolve.
TAGGER = "https://tagger.invalid/ns/1.0/"

_PREFIXES = {
    RDF: "rdf",
    X: "x",
    XML: "xml",
    DC: "dc",
    XMP: "xmp",
    IPTC_CORE: "Iptc4xmpCore",
    LR: "lr",
    DIGIKAM: "digiKam",
    TAGGER: "tagger",
    TIFF: "tiff",
    "http://ns.adobe.com/photoshop/1.0/": "photoshop",
    "http://ns.adobe.com/xap/1.0/mm/": "xmpMM",
    "http://ns.adobe.com/exif/1.0/": "exif",
    "http://ns.adobe.com/xap/1.0/rights/": "xmpRights",
    "http://ns.microsoft.com/photo/1.0/": "MicrosoftPhoto",
    "http://ns.adobe.com/xmp/note/": "xmpNote",
}
_XPACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"
_NEW_PROLOG = f'<?xpacket begin="\ufeff" id="{_XPACKET_ID}"?>\n'
_NEW_EPILOG = '\n<?xpacket end="w"?>\n'

# XML 1.0 Char production; everything else makes Exiv2 reject the whole file.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MISC_HEAD = re.compile(r"\s+|<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", re.S)
_ENCODING = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([^"']+)["']""")


class XmpFormatError(ValueError):
    """The bytes are not an XMP packet this module can rewrite safely."""


@dataclass
class Packet:
    """A parsed packet: the tree, the text around it and each element's xmlns declarations."""

    root: ET.Element
    prolog: str = _NEW_PROLOG
    epilog: str = _NEW_EPILOG
    decls: dict[ET.Element, list[tuple[str, str]]] = field(default_factory=dict)

    @property
    def rdf(self) -> ET.Element:
        """The rdf:RDF element."""
        if self.root.tag == f"{{{RDF}}}RDF":
            return self.root
        found = self.root.find(f"{{{RDF}}}RDF")
        assert found is not None  # parse() refuses packets without one
        return found


class _Builder:
    """TreeBuilder target that remembers which element declared which prefixes."""

    def __init__(self) -> None:
        self._tree = ET.TreeBuilder(insert_comments=True, insert_pis=True)
        self._pending: list[tuple[str, str]] = []
        self.decls: dict[ET.Element, list[tuple[str, str]]] = {}

    def start_ns(self, prefix: str | None, uri: str) -> None:
        self._pending.append((prefix or "", uri))

    def start(self, tag: str, attrib: dict[str, str]) -> ET.Element:
        element = self._tree.start(tag, attrib)
        if self._pending:
            self.decls[element] = self._pending
            self._pending = []
        return element

    def end(self, tag: str) -> ET.Element:
        return self._tree.end(tag)

    def data(self, text: str) -> None:
        self._tree.data(text)

    def comment(self, text: str) -> ET.Element:
        return self._tree.comment(text)

    def pi(self, target: str, text: str | None = None) -> ET.Element:
        return self._tree.pi(target, text)

    def close(self) -> ET.Element:
        return self._tree.close()


def xml_safe(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry (controls, lone surrogates, U+FFFE/F)."""
    return _NOT_XML_CHAR.sub("", text)


def new_packet() -> Packet:
    """An empty packet: xmpmeta, rdf:RDF, no descriptions yet."""
    root = ET.Element(f"{{{X}}}xmpmeta")
    root.text = "\n "
    rdf = ET.SubElement(root, f"{{{RDF}}}RDF")
    rdf.text = "\n "
    rdf.tail = "\n"
    return Packet(root, decls={root: [("x", X)], rdf: [("rdf", RDF)]})


def parse(data: bytes) -> Packet:
    """Parse a sidecar's bytes; XmpFormatError says why they cannot be used."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a BOM before the packet is tolerated on input, never written
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XmpFormatError(f"not UTF-8 (byte {exc.start})") from None
    declared = _ENCODING.match(text)
    if declared and declared.group(1).lower().replace("-", "") not in ("utf8", "usascii", "ascii"):
        raise XmpFormatError(f"declares encoding {declared.group(1)!r}; only UTF-8 is handled")
    if not text.strip():
        return new_packet()
    builder = _Builder()
    parser = DefusedXMLParser(target=builder, forbid_dtd=True)
    try:
        parser.feed(data)
        root = parser.close()
    except ET.ParseError as exc:
        raise XmpFormatError(f"not well-formed XML ({exc})") from None
    except DefusedXmlException as exc:
        raise XmpFormatError(f"refused unsafe XML ({type(exc).__name__})") from None
    if root.tag not in (f"{{{X}}}xmpmeta", f"{{{X}}}xapmeta", f"{{{RDF}}}RDF"):
        raise XmpFormatError(f"root element is {root.tag!r}, not x:xmpmeta")
    packet = Packet(root, _head(text), _tail(text), builder.decls)
    if root.tag != f"{{{RDF}}}RDF" and root.find(f"{{{RDF}}}RDF") is None:
        raise XmpFormatError("no rdf:RDF inside x:xmpmeta")
    return packet


def _head(text: str) -> str:
    pos = 0
    while match := _MISC_HEAD.match(text, pos):
        pos = match.end()
    return text[:pos]


def _tail(text: str) -> str:
    end = len(text)
    while True:
        stripped = text[:end].rstrip()
        if stripped.endswith("?>"):
            end = stripped.rfind("<?")
        elif stripped.endswith("-->"):
            end = stripped.rfind("<!--")
        else:
            return text[len(stripped) :]


def descriptions(packet: Packet) -> list[ET.Element]:
    """The top-level rdf:Description elements."""
    return [child for child in packet.rdf if child.tag == f"{{{RDF}}}Description"]


def property_items(packet: Packet, name: str) -> list[tuple[str | None, str]]:
    """Every value of top-level property ``name`` ('{uri}local'), over all copies, as (lang, text)."""
    items: list[tuple[str | None, str]] = []
    for desc in descriptions(packet):
        if name in desc.attrib:
            items.append((None, desc.attrib[name]))
        for prop in desc.findall(name):
            container = next((c for c in prop if c.tag in (f"{{{RDF}}}Alt", f"{{{RDF}}}Bag", f"{{{RDF}}}Seq")), None)
            if container is None:
                items.append((prop.get(f"{{{XML}}}lang"), prop.text or ""))
                continue
            for li in container.findall(f"{{{RDF}}}li"):
                items.append((li.get(f"{{{XML}}}lang"), li.text or ""))
    return items


def lang_alt(packet: Packet, name: str) -> list[tuple[str, str]]:
    """A language alternative's (lang, text) pairs, x-default first, one per language.

    A value without a language (sloppy writers) counts as x-default.
    """
    seen: dict[str, str] = {}
    for lang, text in property_items(packet, name):
        seen.setdefault(lang or "x-default", text)
    default = [("x-default", seen.pop("x-default"))] if "x-default" in seen else []
    return default + list(seen.items())


def values(packet: Packet, name: str) -> list[str]:
    """The distinct texts of property ``name`` over all its copies, in order."""
    return list(dict.fromkeys(text for _, text in property_items(packet, name)))


def remove_property(packet: Packet, name: str) -> bool:
    """Remove every copy of top-level property ``name``; drop Descriptions this empties."""
    removed = False
    for desc in descriptions(packet):
        if desc.attrib.pop(name, None) is not None:
            removed = True
        hits = desc.findall(name)
        for prop in hits:
            _remove_child(desc, prop)
        if hits:
            removed = True
            if len(desc) == 0 and set(desc.attrib) <= {f"{{{RDF}}}about"}:
                _remove_child(packet.rdf, desc)
                packet.decls.pop(desc, None)
    return removed


def _remove_child(parent: ET.Element, child: ET.Element) -> None:
    # Keep the indentation right: the last child's tail is the parent's closing indent.
    index = list(parent).index(child)
    if index == len(parent) - 1:
        if index == 0:
            parent.text = child.tail if (child.tail or "").strip() == "" else parent.text
        else:
            parent[index - 1].tail = child.tail
    parent.remove(child)


def append_description(packet: Packet, props: Sequence[tuple[str, str, Sequence[tuple[str | None, str]]]]) -> None:
    """Add one rdf:Description holding ``props``: (name, kind, items), kind 'Alt'|'Bag'|'Seq'|'' (simple)."""
    rdf = packet.rdf
    existing = descriptions(packet)
    about = existing[0].get(f"{{{RDF}}}about", "") if existing else ""
    desc = ET.Element(f"{{{RDF}}}Description", {f"{{{RDF}}}about": about})
    used: list[str] = []
    for name, kind, items in props:
        uri = name[1:].split("}", 1)[0]
        if uri not in used:
            used.append(uri)
        prop = ET.SubElement(desc, name)
        prop.tail = "\n   "
        if not kind:
            prop.text = items[0][1]
            continue
        container = ET.SubElement(prop, f"{{{RDF}}}{kind}")
        prop.text, container.text, container.tail = "\n    ", "\n     ", "\n   "
        for lang, value in items:
            li = ET.SubElement(container, f"{{{RDF}}}li", {f"{{{XML}}}lang": lang} if lang else {})
            li.text, li.tail = value, "\n     "
        li.tail = "\n    "
    desc.text = "\n   "
    if len(desc):
        desc[-1].tail = "\n  "
    packet.decls[desc] = [(_PREFIXES.get(uri, "ns"), uri) for uri in used]
    if len(rdf):
        desc.tail = rdf[-1].tail
        rdf[-1].tail = rdf.text if (rdf.text or "").strip() == "" and rdf.text else "\n  "
    else:
        desc.tail = rdf.text if (rdf.text or "").strip() == "" and rdf.text else "\n "
        rdf.text = "\n  "
    rdf.append(desc)


def serialise(packet: Packet) -> str:
    """The packet as text, declarations where they were, prolog and epilog as they were."""
    out = [packet.prolog]
    _write(packet.root, out, {"xml": XML}, packet.decls)
    out.append(packet.epilog)
    return "".join(out)


def _split(name: str) -> tuple[str | None, str]:
    if name.startswith("{"):
        uri, local = name[1:].split("}", 1)
        return uri, local
    return None, name


def _write(el: ET.Element, out: list[str], scope: dict[str, str], decls: dict) -> None:
    if el.tag is ET.Comment:
        out.append(f"<!--{el.text or ''}-->")
    elif el.tag is ET.ProcessingInstruction:
        out.append(f"<?{el.text or ''}?>")
    else:
        own = list(decls.get(el, ()))
        scope = {**scope, **dict(own)}
        tag = _qualify(el.tag, scope, own, attribute=False)
        attrs = [(_qualify(k, scope, own, attribute=True), v) for k, v in el.attrib.items()]
        out.append(f"<{tag}")
        out.extend(f' xmlns:{p}="{_attr(u)}"' if p else f' xmlns="{_attr(u)}"' for p, u in own)
        out.extend(f' {k}="{_attr(v)}"' for k, v in attrs)
        if len(el) == 0 and not el.text:
            out.append("/>")
        else:
            out.append(">")
            out.append(_text(el.text or ""))
            for child in el:
                _write(child, out, scope, decls)
            out.append(f"</{tag}>")
    out.append(_text(el.tail or ""))


def _qualify(name: str, scope: dict[str, str], own: list[tuple[str, str]], *, attribute: bool) -> str:
    uri, local = _split(name)
    if uri is None:
        if not attribute and scope.get(""):
            own.append(("", ""))
            scope[""] = ""
        return local
    for prefix, bound in reversed(list(scope.items())):
        if bound == uri and (prefix or not attribute):
            return f"{prefix}:{local}" if prefix else local
    # Not declared anywhere in scope (an element we added): declare it here.
    prefix = _PREFIXES.get(uri, "ns")
    base, n = prefix, 1
    while prefix in scope:
        prefix, n = f"{base}{n}", n + 1
    own.append((prefix, uri))
    scope[prefix] = uri
    return f"{prefix}:{local}"


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(value: str) -> str:
    return _text(value).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


_CONTAINERS = (f"{{{RDF}}}Alt", f"{{{RDF}}}Bag", f"{{{RDF}}}Seq")


def property_kind(packet: Packet, name: str) -> str | None:
    """'Alt', 'Bag' or 'Seq' for the first element copy of ``name``, '' for a simple value, None when absent."""
    for desc in descriptions(packet):
        if name in desc.attrib:
            return ""
        for prop in desc.findall(name):
            container = next((c for c in prop if c.tag in _CONTAINERS), None)
            return "" if container is None else container.tag.split("}", 1)[1]
    return None


def _indent_before(parent: ET.Element, child: ET.Element) -> str:
    index = list(parent).index(child)
    ws = parent.text if index == 0 else parent[index - 1].tail
    ws = ws or ""
    return ws[ws.rfind("\n") :] if "\n" in ws else "\n   "


def set_property(packet: Packet, name: str, kind: str, items: Sequence[tuple[str | None, str]]) -> bool:
    """Give ``name`` these values where it stands (its first copy; other copies go); False when absent.

    ``kind`` is 'Alt', 'Bag', 'Seq' or '' (simple). Nothing is added when the
    property is absent: the caller appends it with ``append_description``.
    An empty ``items`` removes the property.
    """
    if not items:
        remove_property(packet, name)
        return True
    first: tuple[ET.Element, ET.Element | None] | None = None
    for desc in descriptions(packet):
        if first is None and name in desc.attrib and not kind:
            desc.attrib[name] = items[0][1]
            first = (desc, None)
            continue
        for prop in desc.findall(name):
            if first is None:
                first = (desc, prop)
    if first is None:
        remove_property(packet, name)  # an attribute copy that cannot hold a container
        return False
    desc, keep = first
    # Every other copy goes (attributes included), so the property is written once.
    for other in descriptions(packet):
        if other is not desc or keep is not None:
            other.attrib.pop(name, None)
        for prop in other.findall(name):
            if prop is not keep:
                _remove_child(other, prop)
    if keep is None:
        return True
    for child in list(keep):
        keep.remove(child)
    keep.attrib.pop(f"{{{XML}}}lang", None)
    if not kind:
        keep.text = items[0][1]
        return True
    indent = _indent_before(desc, keep)
    container = ET.SubElement(keep, f"{{{RDF}}}{kind}")
    keep.text, container.text, container.tail = indent + " ", indent + "  ", indent
    li = None
    for lang, value in items:
        li = ET.SubElement(container, f"{{{RDF}}}li", {f"{{{XML}}}lang": lang} if lang else {})
        li.text, li.tail = value, indent + "  "
    assert li is not None
    li.tail = indent + " "
    return True


def remove_namespace(packet: Packet, uri: str) -> None:
    """Drop every top-level property in namespace ``uri`` (and the Descriptions this empties)."""
    prefix = f"{{{uri}}}"
    names: list[str] = []
    for desc in descriptions(packet):
        names += [k for k in desc.attrib if k.startswith(prefix)]
        names += [c.tag for c in desc if isinstance(c.tag, str) and c.tag.startswith(prefix)]
    for name in dict.fromkeys(names):
        remove_property(packet, name)


def _canon(el: ET.Element) -> tuple:
    if not isinstance(el.tag, str):
        return ()
    return (
        el.tag,
        tuple(sorted(el.attrib.items())),
        (el.text or "").strip(),
        tuple(c for c in (_canon(child) for child in el) if c),
    )


def packet_digest(packet: Packet, skip: Iterable[str] = ()) -> str:
    """A digest of every top-level property but those named in ``skip`` or in tagger's namespace.

    Layout, prefixes and the order of properties do not count; values and
    their order inside a container do.
    """
    skipped = set(skip)
    props: list[tuple] = []
    for desc in descriptions(packet):
        for key, value in desc.attrib.items():
            if key != f"{{{RDF}}}about" and key not in skipped and not key.startswith(f"{{{TAGGER}}}"):
                props.append((key, (), value.strip(), ()))
        for child in desc:
            if isinstance(child.tag, str) and child.tag not in skipped and not child.tag.startswith(f"{{{TAGGER}}}"):
                props.append(_canon(child))
    return hashlib.sha256(repr(sorted(props)).encode("utf-8")).hexdigest()[:32]


def property_names(packet: Packet) -> list[str]:
    """Every top-level property's name ('{uri}local'), attributes included, in order."""
    names: list[str] = []
    for desc in descriptions(packet):
        names += [k for k in desc.attrib if k != f"{{{RDF}}}about" and k.startswith("{")]
        names += [c.tag for c in desc if isinstance(c.tag, str)]
    return list(dict.fromkeys(names))


def _uris(el: ET.Element, out: set[str]) -> None:
    for name in (el.tag, *el.attrib):
        if isinstance(name, str) and name.startswith("{"):
            out.add(name[1:].split("}", 1)[0])
    for child in el:
        _uris(child, out)


def copy_properties(dst: Packet, src: Packet, names: Iterable[str]) -> None:
    """Copy top-level properties ``names`` of ``src`` into ``dst`` (replacing dst's), in one new Description."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return
    for name in wanted:
        remove_property(dst, name)
    prefixes = {uri: prefix for declared in src.decls.values() for prefix, uri in declared if prefix}
    existing = descriptions(dst)
    about = existing[0].get(f"{{{RDF}}}about", "") if existing else ""
    desc = ET.Element(f"{{{RDF}}}Description", {f"{{{RDF}}}about": about})
    uris: set[str] = set()
    for source in descriptions(src):
        for key, value in source.attrib.items():
            if key in wanted:
                desc.set(key, value)
                uris.add(key[1:].split("}", 1)[0])
        for child in source:
            if isinstance(child.tag, str) and child.tag in wanted:
                clone = copy.deepcopy(child)
                clone.tail = "\n   "
                desc.append(clone)
                _uris(clone, uris)
    uris.discard(RDF)
    uris.discard(XML)
    if len(desc):
        desc.text = "\n   "
        desc[-1].tail = "\n  "
    declared: list[tuple[str, str]] = []
    for uri in sorted(uris):
        base = prefixes.get(uri) or _PREFIXES.get(uri, "ns")
        prefix, n = base, 1
        while any(p == prefix for p, _ in declared):
            prefix, n = f"{base}{n}", n + 1
        declared.append((prefix, uri))
    dst.decls[desc] = declared
    rdf = dst.rdf
    if len(rdf):
        desc.tail = rdf[-1].tail
        rdf[-1].tail = "\n  "
    else:
        desc.tail, rdf.text = "\n ", "\n  "
    rdf.append(desc)
