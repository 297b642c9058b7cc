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

    # shard: a mode byte, then steps split at SEP, each a control byte and a
    # message; "@..." answers the last request the proxy sent (see shard.rs).
    for name, (mode, steps) in SHARD_FLOWS.items():
        write("shard", name, bytes([mode]) + SEP.join(bytes([c]) + m for c, m in steps))
    for name, data in rfc.items():
        write("shard", name, bytes([0x02]) + bytes([0]) + data)


SEP = b"\n~~~\n"
# Control byte: bits 0-1 the peer (0 caller 127.0.0.1:5070, 1 127.0.0.2:5060,
# 2 TCP from 127.0.0.3, 3 the callee 127.0.0.1:5090), bit 2 the core, bits 3-7
# the clock's step (x 256 ms).
CALLER, OTHER, TCP, CALLEE = 0, 1, 2, 3
LATER = 8 * 4  # 1 s


def req(method, uri, branch, cseq, extra=b"", call_id=b"fz-1", to_tag=b"", via_host=b"127.0.0.1:5070"):
    return (
        method + b" " + uri + b" SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP " + via_host + b";branch=z9hG4bK" + branch + b";rport\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:alice@example.test>;tag=a1\r\n"
        b"To: <sip:bob@example.test>" + (b";tag=" + to_tag if to_tag else b"") + b"\r\n"
        b"Call-ID: " + call_id + b"\r\n"
        b"CSeq: " + cseq + b" " + method + b"\r\n"
        + extra +
        b"Content-Length: 0\r\n\r\n"
    )


REGISTER_BOB = (
    b"REGISTER sip:example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKreg1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:bob@example.test>;tag=r1\r\n"
    b"To: <sip:bob@example.test>\r\n"
    b"Call-ID: reg-bob\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:bob@127.0.0.1:5090>;expires=60\r\n"
    b"Content-Length: 0\r\n\r\n"
)
INVITE = req(b"INVITE", b"sip:bob@example.test", b"inv1", b"1",
             b"Contact: <sip:alice@127.0.0.1:5070>\r\n")
EMPTY = b"Content-Length: 0\r\n\r\n"
OK = b"@200 OK\r\nContact: <sip:bob@127.0.0.1:5090>\r\n" + EMPTY
ROUTE = b"Route: <sip:127.0.0.1:5060;lr>\r\n"
ACK = req(b"ACK", b"sip:bob@127.0.0.1:5090", b"ack1", b"1", ROUTE, to_tag=b"fz")
BYE = req(b"BYE", b"sip:bob@127.0.0.1:5090", b"bye1", b"2", ROUTE, to_tag=b"fz")
CANCEL = req(b"CANCEL", b"sip:bob@example.test", b"inv1", b"1")

SHARD_FLOWS = {
    "call": (0x02, [(CALLEE, REGISTER_BOB), (CALLER, INVITE), (CALLEE, b"@180 Ringing\r\n" + EMPTY),
                    (CALLEE, OK), (CALLER, ACK), (CALLER | LATER, BYE), (CALLEE, b"@200 OK\r\n" + EMPTY)]),
    "call_two_cores": (0x06, [(CALLEE, REGISTER_BOB), (CALLER | 4, INVITE), (CALLEE, b"@180 Ringing\r\n" + EMPTY),
                              (CALLEE | 4, OK), (CALLER, ACK), (CALLER | 4, BYE), (CALLEE, b"@200 OK\r\n" + EMPTY)]),
    "call_tcp_serial": (0x12, [(CALLEE, REGISTER_BOB), (TCP, INVITE.replace(b"SIP/2.0/UDP 127.0.0.1:5070", b"SIP/2.0/TCP 127.0.0.3:40000")),
                               (CALLEE, b"@486 Busy Here\r\n" + EMPTY)]),
    "cancel": (0x02, [(CALLEE, REGISTER_BOB), (CALLER, INVITE), (CALLEE, b"@180 Ringing\r\n" + EMPTY),
                      (CALLER, CANCEL), (CALLEE, b"@200 OK\r\n" + EMPTY), (CALLER | 0xF8, ACK)]),
    "no_answer": (0x02, [(CALLEE, REGISTER_BOB), (CALLER, INVITE), (CALLER | 0xF8, INVITE), (CALLER | 0xF8, INVITE)]),
    "stateless": (0x01, [(CALLEE, REGISTER_BOB), (CALLER, INVITE), (CALLEE, OK), (CALLER, ACK)]),
    "register_auth": (0x40, [(CALLEE, REGISTER_BOB),
                             (CALLEE, REGISTER_BOB.replace(b"CSeq: 1", b"CSeq: 2").replace(
                                 b"Max-Forwards: 70\r\n",
                                 b"Max-Forwards: 70\r\nAuthorization: Digest username=\"bob\", realm=\"example.test\", "
                                 b"nonce=\"abc\", uri=\"sip:example.test\", response=\"00000000000000000000000000000000\", "
                                 b"algorithm=MD5, qop=auth, nc=00000001, cnonce=\"x\"\r\n"))]),
    "invite_auth_all": (0x80, [(CALLER, INVITE), (CALLER, ACK)]),
    "options_and_junk": (0x02, [(OTHER, req(b"OPTIONS", b"sip:127.0.0.1:5060", b"o1", b"1")),
                                (OTHER, b"\r\n\r\n"), (OTHER, b"SIP/2.0 200 OK\r\n\r\n"),
                                (CALLER, req(b"MESSAGE", b"sip:carol@127.0.0.9", b"m1", b"1")), (OTHER, b"@408 Request Timeout\r\n" + EMPTY)]),
}


if __name__ == "__main__":
    main()
