#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/seeds/<target>/.

Run from the repository root: python3 fuzz/seeds/make_seeds.py
Sources: the RFC 4475 torture messages (tests/rfc4475/*.dat) and the hand-written
messages below. The framing and splice targets read control bytes before the
message (see their doc comments), so their seeds carry a prefix.
"""
import glob
import os

HAND = {
    "invite_sdp": (
        b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1, SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776;rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"Route: <sip:us.example.com;lr>, <sip:p2.example.com;lr>\r\n"
        b"Record-Route: <sip:p1.example.com;lr>\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>\r\n"
        b"From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Contact: <sip:alice@pc33.atlanta.example.com;transport=tcp>;+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\";reg-id=1\r\n"
        b"Subject: lunch\r\n\tat noon\r\n"
        b"Content-Type: application/sdp\r\n"
        b"Content-Length: 127\r\n"
        b"\r\n"
        b"v=0\r\no=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n"
        b"s=-\r\nc=IN IP4 192.0.2.101\r\nt=0 0\r\nm=audio 49172 RTP/AVP 0\r\n"
    ),
    "register_v6": (
        b"REGISTER sips:[2001:db8::10]:5061 SIP/2.0\r\n"
        b"v: SIP/2.0/TLS [2001:db8::9]:5061;branch=z9hG4bKreg1;received=[2001:db8::9];rport=5061\r\n"
        b"Max-Forwards: 70\r\n"
        b"t: <sips:alice@example.com>\r\n"
        b"f: <sips:alice@example.com>;tag=r1\r\n"
        b"i: reg-1@[2001:db8::9]\r\n"
        b"CSeq: 2 REGISTER\r\n"
        b"m: <sips:alice@[2001:db8::9]:5061;transport=tls>;expires=3600;q=0.7, *\r\n"
        b"Expires: 7200\r\n"
        b"Supported: path, outbound, gruu\r\n"
        b"Authorization: Digest username=\"alice\", realm=\"example.com\", nonce=\"a1b2\", uri=\"sips:[2001:db8::10]\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x,y\"\r\n"
        b"l: 0\r\n"
        b"\r\n"
    ),
    "ringing_180": (
        b"SIP/2.0 180 Ringing\r\n"
        b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1;received=192.0.2.3\r\n"
        b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776;rport=5060\r\n"
        b"Record-Route: <sip:p1.example.com;lr>\r\n"
        b"To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n"
        b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
        b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        b"Contact: <sip:bob@192.0.2.4>\r\n"
        b"CSeq: 314159 INVITE\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    "ok_200_auth": (
        b"SIP/2.0 401 Unauthorized\r\n"
        b"Via: SIP/2.0/TCP [2001:db8::7]:5060;branch=z9hG4bKcs.1, SIP/2.0/TCP client.example.com:5060;branch=z9hG4bK74bf9\r\n"
        b"From: Bob <sips:bob@biloxi.example.com>;tag=a73kszlfl\r\n"
        b"To: Bob <sips:bob@biloxi.example.com>;tag=1410948204\r\n"
        b"Call-ID: 1j9FpLxk3uxtm8tn@biloxi.example.com\r\n"
        b"CSeq: 1 REGISTER\r\n"
        b"WWW-Authenticate: Digest realm=\"atlanta.example.com\", qop=\"auth\",\r\n"
        b" nonce=\"ea9c8e88df84f1cec4341ae6cbe5a359\", opaque=\"\", stale=FALSE, algorithm=SHA-256\r\n"
        b"Content-Length: 0\r\n"
        b"\r\n"
    ),
    "options_bare_lf": (
        b"\r\nOPTIONS sip:carol@chicago.example.com;transport=udp?subject=hi SIP/2.0\n"
        b"Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bKopt;rport\n"
        b"Max-Forwards: 0\n"
        b"To: <sip:carol@chicago.example.com>\n"
        b"From: \"\" <sip:%61lice@atlanta.example.com>;tag=o1\n"
        b"Call-ID: opt1\n"
        b"CSeq: 7 OPTIONS\n"
        b"Accept: application/sdp, text/plain;q=0.5\n"
        b"X-Extension: a, \"b,c\", <d,e>\n"
        b"\n"
    ),
}

# Streams for the framing target: several messages, pings and padding.
def cl_msg(body):
    return (
        b"MESSAGE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP a.example.com;branch=z9hG4bKm\r\n"
        b"Call-ID: m\r\nCSeq: 1 MESSAGE\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )

STREAMS = {
    "two_messages": HAND["ringing_180"] + HAND["register_v6"],
    "ping_between": b"\r\n\r\n" + cl_msg(b"hello") + b"\r\n" + cl_msg(b"") + b"\r\n\r\n",
    "folded_length": (
        b"BYE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKb\r\n"
        b"Content-Length:\r\n 3\r\n\r\nabcINFO sip:x SIP/2.0\r\nl: 0\r\n\r\n"
    ),
    "invite_sdp": HAND["invite_sdp"] + HAND["invite_sdp"],
    "no_length": HAND["options_bare_lf"],
}


def write(target, name, data):
    d = os.path.join("fuzz", "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    rfc = {}
    for path in sorted(glob.glob("tests/rfc4475/*.dat")):
        with open(path, "rb") as f:
            rfc["rfc4475_" + os.path.basename(path)[:-4]] = f.read()
    messages = dict(rfc)
    messages.update(HAND)

    for name, data in messages.items():
        write("parse", name, data)
        # splice: two edit bytes, a status selector (see splice.rs).
        write("splice", name, bytes([0x3F, 0x7A, 1]) + data)
    for i, name in enumerate(HAND):
        for flags, flags2 in ((0x01, 0x00), (0x02, 0x20), (0x08, 0x02), (0x10, 0x04),
                              (0x20, 0x08), (0x54, 0x10), (0xB0, 0x01), (0x00, 0x0E),
                              (0x20, 0x41), (0x00, 0x40),
                              (0x20, 0x80), (0x30, 0xC1)):
            write("splice", f"{name}_{flags:02x}{flags2:02x}", bytes([flags, flags2, i]) + HAND[name])

    # framing: ctl byte = max-len selector | (chunk-size count << 2), then sizes.
    for name, data in STREAMS.items():
        write("framing", name + "_whole", bytes([3]) + data)
        write("framing", name + "_bytes", bytes([3 | (1 << 2), 1]) + data)
        write("framing", name + "_pieces", bytes([3 | (3 << 2), 7, 0, 40]) + data)
        write("framing", name + "_small", bytes([1 | (2 << 2), 13, 64]) + data)
    for name, data in rfc.items():
        write("framing", name, bytes([3 | (2 << 2), 5, 31]) + data)


if __name__ == "__main__":
    main()
