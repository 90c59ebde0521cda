"""What a receiver needs from each m-section of a bundled SDP, checked on SDP text.

Written from the standards, not from `sfu.sdp`, so it judges what the server sends:

- JSEP (RFC 8829) section 5.8.3, as Firefox and Chromium parse: every m-section has ICE
  ufrag and password (RFC 8839 sizes), a DTLS setup role and a fingerprint, "present at
  the media level, or inherited from the session level"; with the ``require`` RTCP mux
  policy browsers use, ``a=rtcp-mux`` in each audio/video m-section.
- RFC 8843: a BUNDLE group whose mids all exist, one address type, and the transport of
  the tagged m-section (the first mid) applied to all: it lists the candidates, and the
  other bundled m-sections share its address and port. RFC 8839: the m= and c= lines
  of that section carry one of its candidates (the default one).
- The server does not trickle: the tagged section's candidates end with
  ``a=end-of-candidates`` (RFC 8840), so a receiver need not wait for more.
- Chromium refuses two ``a=fingerprint`` lines at one level.
- Stock aiortc 1.16 takes the shared transport's candidates from the last m-section (with
  ``max-bundle``) or from the last m-section of the tagged one's kind (``balanced``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ICE_CHARS = re.compile(r"^[A-Za-z0-9+/]+$")
FINGERPRINT = re.compile(r"^sha-256 ([0-9A-F]{2}:){31}[0-9A-F]{2}$")


@dataclass
class Section:
    """One m-section's lines, split the way every check below needs them."""

    kind: str
    port: int
    connection: str | None
    attributes: dict[str, list[str]]

    def one(self, name: str) -> str | None:
        values = self.attributes.get(name, [])
        return values[0] if len(values) == 1 else None


def _attributes(lines: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in lines:
        if line.startswith("a="):
            name, _, value = line[2:].partition(":")
            found.setdefault(name, []).append(value)
    return found


def _split(sdp: str) -> tuple[Section, list[Section]]:
    lines = [line for line in sdp.split("\r\n") if line]
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    blocks = [lines[: starts[0] if starts else len(lines)]]
    blocks += [lines[s:e] for s, e in zip(starts, [*starts[1:], len(lines)], strict=True)]
    sections = []
    for block in blocks:
        connection = next((line[2:] for line in block if line.startswith("c=")), None)
        kind, port = "", 0
        if block and block[0].startswith("m="):
            kind, port_text = block[0][2:].split()[:2]
            port = int(port_text.split("/")[0])
        sections.append(Section(kind, port, connection, _attributes(block)))
    return sections[0], sections[1:]


def _candidates(section: Section) -> list[tuple[str, int]]:
    """``(address, port)`` of each candidate, in order."""
    found = []
    for value in section.attributes.get("candidate", []):
        bits = value.split()
        found.append((bits[4], int(bits[5])))
    return found


def bundle_problems(sdp: str, sdp_type: str) -> list[str]:
    """Everything in `sdp` (an ``offer`` or ``answer``) a receiver following the rules in
    this module's docstring would refuse or miss; empty when it has all it needs."""
    problems: list[str] = []
    if not sdp.endswith("\r\n") or "\n" in sdp.replace("\r\n", ""):
        problems.append("lines must end with CRLF")
    session, sections = _split(sdp)
    groups = [v.split()[1:] for v in session.attributes.get("group", []) if v.startswith("BUNDLE")]
    if len(groups) != 1 or len(groups[0]) < 2:
        return [*problems, "needs one a=group:BUNDLE of at least two mids"]
    bundle = groups[0]
    mids = [s.one("mid") for s in sections]
    if len(set(mids)) != len(mids) or None in mids:
        problems.append(f"each m-section needs one a=mid of its own, mids are {mids}")
    if sorted(bundle) != sorted(m for m in mids if m is not None):
        problems.append(f"BUNDLE lists {bundle}, the m-sections are {mids}")
    if bundle[0] not in mids:
        return [*problems, f"the tagged mid {bundle[0]} has no m-section"]
    tag = mids.index(bundle[0])

    resolved = []
    for index, section in enumerate(sections):
        where = f"m-section {index} (mid {mids[index]})"
        connection = section.connection or session.connection
        if connection is None or not re.match(r"^IN IP[46] \S+$", connection):
            problems.append(f"{where}: needs a c=IN IP4/IP6 line, has {connection!r}")
        if section.port == 0 and "bundle-only" not in section.attributes:
            problems.append(f"{where}: port 0 without a=bundle-only disables it")
        values = {}
        for name in ("ice-ufrag", "ice-pwd", "setup"):
            found = section.attributes.get(name) or session.attributes.get(name) or []
            if len(found) != 1:
                problems.append(f"{where}: needs one a={name} (its own or the session's)")
            values[name] = found[0] if found else ""
        ufrag, pwd, setup = values["ice-ufrag"], values["ice-pwd"], values["setup"]
        if not (4 <= len(ufrag) <= 256 and ICE_CHARS.match(ufrag)):
            problems.append(f"{where}: ice-ufrag {ufrag!r} is not 4-256 ice-chars")
        if not (22 <= len(pwd) <= 256 and ICE_CHARS.match(pwd)):
            problems.append(f"{where}: ice-pwd is not 22-256 ice-chars")
        wanted = ("actpass",) if sdp_type == "offer" else ("active", "passive")
        if setup not in wanted:
            problems.append(f"{where}: setup {setup!r} in an {sdp_type}, wanted {wanted}")
        fingerprints = section.attributes.get("fingerprint") or session.attributes.get(
            "fingerprint", []
        )
        if len(fingerprints) != 1 or not FINGERPRINT.match(fingerprints[0]):
            problems.append(f"{where}: needs one sha-256 a=fingerprint, has {fingerprints}")
        if section.kind in ("audio", "video") and "rtcp-mux" not in section.attributes:
            problems.append(f"{where}: no a=rtcp-mux")
        resolved.append((ufrag, pwd, setup, tuple(fingerprints), connection, section.port))

    address_types = {r[4].split()[1] for r in resolved if r[4]}
    if len(address_types) > 1:
        problems.append(f"bundled m-sections mix address types {sorted(address_types)}")
    if any(r[:4] != resolved[tag][:4] for r in resolved):
        problems.append("the bundled m-sections do not share one ICE/DTLS transport")
    if any(r[4:] != resolved[tag][4:] for r in resolved if r[5] != 0):
        problems.append("the bundled m-sections do not share the tagged one's address and port")

    tagged = sections[tag]
    candidates = _candidates(tagged)
    if not candidates:
        problems.append(f"the tagged m-section {tag} lists no candidate")
    elif "end-of-candidates" not in tagged.attributes:
        problems.append(f"the tagged m-section {tag} has no a=end-of-candidates")
    default = ((resolved[tag][4] or "").split()[-1], tagged.port)
    if candidates and default not in candidates:
        problems.append(f"the tagged m-section's m=/c= {default} is none of its candidates")
    for value in tagged.attributes.get("candidate", []):
        bits = value.split()
        if len(bits) < 8 or bits[1] != "1" or bits[6] != "typ":
            problems.append(f"candidate {value!r}: needs component 1 (rtcp-mux) and a type")

    kinds = [s.kind for s in sections]
    last_of_kind = max(i for i, kind in enumerate(kinds) if kind == kinds[tag])
    for index, policy in ((len(sections) - 1, "max-bundle"), (last_of_kind, "balanced")):
        if sorted(_candidates(sections[index])) != sorted(candidates):
            problems.append(
                f"m-section {index} lacks the tagged one's candidates, where stock aiortc "
                f"({policy}) reads them"
            )
    return problems
