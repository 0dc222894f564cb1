#!/usr/bin/env bash
# (Re)creates the seed corpora fuzz/corpus/<target>/ from the repository's testdata.
# Needs bash and python3 (standard library only). Run from anywhere:
#   bash fuzz/seed.sh
# Seed files are named seed-*; files libFuzzer adds (40-hex names) and regression files
# (regress-*) are left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
testdata="$here/../testdata"
corpus="$here/corpus"
targets="frame message_json register_answer http_response notify_body notify_endpoint keys cert_der client_session ws_client_frames ws_server_frames ws_upgrade_answer server_session"
for t in $targets; do
  mkdir -p "$corpus/$t"
  rm -f "$corpus/$t"/seed-*
done

TESTDATA="$testdata" CORPUS="$corpus" python3 - <<'PY'
import base64, json, os, re, struct

testdata = os.environ["TESTDATA"]
corpus = os.environ["CORPUS"]

def put(target, name, data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(corpus, target, "seed-" + name), "wb") as f:
        f.write(data)

def read(rel, mode="rb"):
    with open(os.path.join(testdata, rel), mode) as f:
        return f.read()

vectors = json.loads(read("vectors/frame_vectors.json"))

# --- frame / message_json: every frame of the vectors, plus a few hand-made shapes.
frames = {}
for name in sorted(os.listdir(os.path.join(testdata, "frames"))):
    frames["file-" + name.rsplit(".", 1)[0]] = read("frames/" + name).decode("utf-8")
for key, value in vectors.items():
    if isinstance(value, dict) and "frame" in value:
        frames["vector-" + key] = value["frame"]
ack = '{"protocol":{"x-type":"message","x-cmd":"CONSUME_ACK","x-msgId":"m1","x-version":"1.0","x-status":"SUCCESS"}}'
frames["consume-ack"] = "from-sys:openchannel\r\nstream-id:s1\r\n\r\n" + ack
frames["no-headers"] = "\r\n\r\n" + ack
frames["no-header-end"] = ack
frames["ambiguous-data"] = '\r\n\r\n{"protocol":{"x-type":"message","x-cmd":"CONSUME","data" : {}},"data":{"content":{}}}'
frames["deep"] = "\r\n\r\n" + "[" * 70 + "]" * 70
for name, text in frames.items():
    put("frame", name, text)
    body = text.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in text else text
    put("message_json", name, body)
with open(os.path.join(testdata, "examples/platform_messages.jsonl"), encoding="utf-8") as f:
    for i, line in enumerate(f):
        example = json.loads(line)
        body = json.dumps({
            "protocol": {"x-type": "message", "x-cmd": "CONSUME", "x-msgId": "e%d" % i},
            "data": {"header": {"appId": "2021000000000001", "msgApi": example["msg_api"]},
                     "content": example["biz_content"]},
        }, ensure_ascii=False, separators=(",", ":"))
        put("message_json", "example-%d" % i, body)

# --- register_answer: a flag byte (bit 0 GBK, bit 1 RSA, bit 2 expect a cert SN,
# bits 5-7 the HTTP status) then the body.
ok = vectors["register_response"]["body"]
refused = vectors["register_response_failure"]["body"]
put("register_answer", "ok", b"\x00" + ok.encode())
put("register_answer", "ok-gbk", b"\x01" + ok.encode())
put("register_answer", "ok-sha1", b"\x02" + ok.encode())
put("register_answer", "ok-cert-sn-absent", b"\x04" + ok.encode())
with_sn = ok[:-1] + ',"alipay_cert_sn":"ffffffffffffffffffffffffffffffff"}'
put("register_answer", "ok-wrong-cert-sn", b"\x04" + with_sn.encode())
put("register_answer", "refused", b"\x00" + refused.encode())
put("register_answer", "refused-404", b"\x40" + refused.encode())
put("register_answer", "html-500", b"\x60<html>error</html>")
put("register_answer", "unsigned", b"\x00" + b'{"response":{"code":"10000","msg":"Success","link_token":"t"}}')

# --- http_response: a limit byte, then response bytes.
def http(status_line, headers, body):
    head = status_line + "\r\n" + "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode() + body
answers = {
    "register-ok": http("HTTP/1.1 200 OK", [("Content-Type", "application/json;charset=UTF-8"),
        ("Set-Cookie", "zone=GZ00B; Path=/; HttpOnly"), ("Content-Length", str(len(ok.encode()))),
        ("Connection", "close")], ok.encode()),
    "chunked": http("HTTP/1.1 200 OK", [("Transfer-Encoding", "chunked")], b"2\r\n{}\r\n3;x=1\r\nabc\r\n0\r\n\r\n"),
    "close-delimited": http("HTTP/1.1 200 OK", [("Set-Cookie", "zone=A"), ("set-cookie", "b=1")], b"body"),
    "no-content": http("HTTP/1.1 204 No Content", [], b""),
    "not-found": http("HTTP/1.1 404 Not Found", [("Content-Length", "0"), ("Connection", "close")], b""),
    "unavailable": http("HTTP/1.1 503 Service Unavailable", [("Content-Length", "5")], b"busy!"),
    "http10": http("HTTP/1.0 200 OK", [("Content-Length", "2")], b"{}extra"),
    "bad-length": http("HTTP/1.1 200 OK", [("Content-Length", "x")], b"{}"),
    "bad-chunk": http("HTTP/1.1 200 OK", [("Transfer-Encoding", "chunked")], b"zz\r\n"),
}
for name, data in answers.items():
    put("http_response", name, b"\x00" + data)
put("http_response", "chunked-small-limit", b"\x02" + answers["chunked"])

# --- notify_body: the notification bodies.
for name in sorted(os.listdir(os.path.join(testdata, "notify"))):
    put("notify_body", name.rsplit(".", 1)[0], read("notify/" + name).rstrip(b"\r\n"))
put("notify_body", "gbk", b"subject=%B2%E2%CA%D4&charset=GBK&a=x+y&sign_type=RSA2&sign=AAAA")
put("notify_body", "gb2312-gbk-only", b"subject=%B2%E2%81%40&charset=Gb2312&sign_type=RSA2&sign=AAAA")

# --- notify_endpoint: a flag byte (bits 0-1 content type, bit 2 rule V2, bit 3 the
# gateway vector's app id, bit 4 handler ok, bit 5 freshness window, bit 6 512-byte
# limit; see core/src/fuzzing.rs) then a notification body.
for name in sorted(os.listdir(os.path.join(testdata, "notify"))):
    body = read("notify/" + name).rstrip(b"\r\n")
    stem = name.rsplit(".", 1)[0]
    v2 = 4 if stem.endswith("_v2") else 0
    app = 8 if stem.startswith("gateway") else 0
    put("notify_endpoint", stem + "-ok", bytes([v2 | app | 16]) + body)
    put("notify_endpoint", stem + "-fail-fresh", bytes([1 | v2 | app | 32]) + body)
put("notify_endpoint", "no-content-type", b"\x02" + read("notify/trade_notify_rsa2_v1.txt").rstrip(b"\r\n"))
put("notify_endpoint", "text-plain", b"\x03" + read("notify/trade_notify_rsa2_v1.txt").rstrip(b"\r\n"))
put("notify_endpoint", "limit-512", b"\x50" + read("notify/trade_notify_rsa2_v1.txt").rstrip(b"\r\n"))
put("notify_endpoint", "foreign-app", b"\x18" + read("notify/trade_notify_rsa2_v1.txt").rstrip(b"\r\n"))

# --- keys and cert_der: PEM text, bare base64 and DER.
def pem_blocks(text):
    return [base64.b64decode("".join(m.group(2).split()))
            for m in re.finditer(r"-----BEGIN ([A-Z ]+)-----(.*?)-----END \1-----", text, re.S)]
key_files = ["vectors/keys/" + n for n in sorted(os.listdir(os.path.join(testdata, "vectors/keys")))]
key_files.append("keys/small_1024_pkcs1.pem")
for rel in key_files:
    name = os.path.basename(rel).rsplit(".", 1)[0]
    text = read(rel).decode()
    put("keys", name + "-pem", text)
    der = pem_blocks(text)[0]
    put("keys", name + "-der", der)
    if rel.endswith("public.pem") or "pkcs8" in rel:
        put("keys", name + "-base64", base64.b64encode(der))
for name in sorted(os.listdir(os.path.join(testdata, "vectors/certs"))):
    text = read("vectors/certs/" + name).decode()
    stem = name.rsplit(".", 1)[0]
    put("cert_der", stem + "-pem", text)
    for i, der in enumerate(pem_blocks(text)):
        put("cert_der", "%s-%d-der" % (stem, i), der)

# --- client_session: a seed byte, then operations (see core/src/fuzzing.rs):
# 0 consume(id, ts) 1 text(len, bytes) 2 produce_ack(pick) 3 complete(pick)
# 4 complete_unknown(b) 5 send(len, bytes) 6 advance(u16 x 10 ms) 7 to_deadline
# 8 pong 9 ws_closed 10 shutdown 11 attempt(how, ...)
def ops(*parts):
    out = bytearray()
    for p in parts:
        out += bytes(p) if isinstance(p, (list, tuple)) else p
    return bytes(out)
busy = read("frames/produce_ack_busy.txt")[:255]
sessions = {
    "deliver-complete-redeliver": ops([1], [0, 1, 0], [3, 0], [0, 1, 0], [0, 2, 0], [3, 1], [0, 2, 4]),
    "in-flight-duplicate": ops([2], [0, 3, 0], [0, 3, 4], [3, 0], [0, 3, 0]),
    "send-and-ack": ops([3], [5, 2, 0, 0], [2, 0], [5, 1, 0], [2, 0x41], [2, 0xC0], [6, 0xE8, 0x03]),
    "timestamps": ops([4], [0, 4, 2], [0, 5, 3], [0, 6, 1], [3, 0], [3, 0]),
    "close-reconnect": ops([5], [0, 7, 0], [9], [7], [11, 0], [3, 0], [0, 7, 0]),
    "heartbeat-dead": ops([6], [7], [8], [7], [7], [7], [7], [7], [11, 1]),
    "shutdown-in-flight": ops([7], [0, 8, 0], [10], [0, 9, 0], [3, 0], [7]),
    "fuzzed-text": ops([8], [1, len(busy)], busy, [1, 4], b"\r\n\r\n", [4, 9]),
    "register-garbage": ops([9], [9], [7], [11, 6, 19], b"HTTP/1.1 500 X\r\n\r\n", [7], [11, 3]),
}
for name, data in sessions.items():
    put("client_session", name, data)
# --- ws_client_frames / ws_server_frames: a byte picking the message limit (bits 0-1:
# 16, 125, 4096, 1 MiB) and the chunk size (bits 2-7, plus one), then websocket bytes
# (server frames unmasked, client frames masked).
def ws_frame(opcode, payload, fin=True, mask=None, rsv=0):
    out = bytearray([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        out.append(m | n)
    elif n < 65536:
        out += bytes([m | 126]) + struct.pack(">H", n)
    else:
        out += bytes([m | 127]) + struct.pack(">Q", n)
    if mask:
        out += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload
gbk = json.loads(read("vectors/gbk_frames.json"))
consume_ws = base64.b64decode(gbk["consume_gbk"]["websocket_frame_base64"])
produce_ws = base64.b64decode(gbk["produce_gbk"]["websocket_frame_masked_base64"])
for role, mask in (("ws_client_frames", None), ("ws_server_frames", b"\x37\xfa\x21\x3d")):
    f = lambda op, p, fin=True, rsv=0: ws_frame(op, p, fin, mask, rsv)
    shapes = {
        "text": f(1, b"hello"),
        "fragments-ping-between": f(1, b"from-sys:", False) + f(9, b"hb") + f(0, b"", False) + f(0, b"openchannel"),
        "pong-binary": f(10, b"42") + f(2, b"\x00\xff"),
        "close-normal": f(8, b"\x03\xe8bye") + f(1, b"after close"),
        "close-empty": f(8, b""),
        "close-bad-code": f(8, b"\x03\xed"),
        "close-one-byte": f(8, b"\x03"),
        "continuation-first": f(0, b"x"),
        "new-message-in-fragment": f(1, b"a", False) + f(2, b"b"),
        "reserved-bits": f(1, b"x", rsv=4),
        "reserved-opcode": f(3, b"x"),
        "fragmented-ping": f(9, b"x", False),
        "len16": f(1, b"y" * 300),
        "claims-2^62": bytes([0x82, 0x7F | (0x80 if mask else 0), 0x40, 0, 0, 0, 0, 0, 0, 0]) + (mask or b""),
        "wrong-masking": ws_frame(1, b"x", True, None if mask else b"\x01\x02\x03\x04"),
    }
    for name, data in shapes.items():
        put(role, name, bytes([0x02 | 4 * 3]) + data)
    put(role, "text-tight-limit", bytes([0x00]) + f(1, b"x" * 17))
    put(role, "bytewise", bytes([0x02]) + shapes["fragments-ping-between"])
put("ws_client_frames", "consume-gbk", b"\x03" + consume_ws)
put("ws_server_frames", "produce-gbk", b"\x03" + produce_ws)

# --- ws_upgrade_answer: a split byte, then the server's answer (the client's key is
# RFC 6455's sample nonce).
accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
ok101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n" % accept
upgrade = {
    "ok": ok101.encode(),
    "ok-with-frame": ok101.encode() + ws_frame(1, b"hello"),
    "ok-token-list": ("HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: %s\r\n\r\n" % accept).encode(),
    "wrong-accept": ok101.replace(accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=").encode(),
    "forbidden": b"HTTP/1.1 403 Forbidden\r\nContent-Length: 3\r\n\r\nno!",
    "deflate": ok101[:-2].encode() + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
    "garbage": b"SSH-2.0-OpenSSH_9.6\r\n",
}
for name, data in upgrade.items():
    put("ws_upgrade_answer", name, bytes([len(data) // 2 % 256]) + data)


# --- server_session: a byte (bits 0-5: chunk size minus one; bit 6: to an open
# websocket rather than a fresh connection; bit 7: end the connection after), then
# client bytes.
m = b"\x37\xfa\x21\x3d"
c = lambda op, p, fin=True: ws_frame(op, p, fin, m)
key_ok = "dGhlIHNhbXBsZSBub25jZQ=="
def upgrade_req(key, query="app_id=2021000000000001&charset=UTF-8"):
    return ("GET /websocket?%s HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n\r\n" % (query, key)).encode()
put("server_session", "register-unsigned-bytewise", b"\x00" + b"GET /websocket/register.do?app_id=2021000000000001&charset=UTF-8 HTTP/1.1\r\nHost: x\r\n\r\n")
put("server_session", "register-post", b"\x3f" + b"POST /websocket/register.do HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
put("server_session", "upgrade-bad-key", b"\x3f" + upgrade_req("dG9vIHNob3J0"))
put("server_session", "upgrade-unsigned", b"\x07" + upgrade_req(key_ok) + c(1, b"early"))
put("server_session", "foreign", b"\x3f" + b"POST /admin/push HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}")
put("server_session", "head-too-long", b"\x3f" + b"GET /" + b"a" * 9000)
ack = b'{"protocol":{"x-type":"message","x-cmd":"CONSUME_ACK","x-msgId":"m1","x-version":"1.0","x-status":"SUCCESS"}}'
produce = b'stream-id:s1\r\n\r\n{"protocol":{"x-type":"message","x-cmd":"PRODUCE","x-version":"1.0"},"data":{"header":{"msgApi":"alipay.x.y"},"content":"{}"}}'
put("server_session", "ws-ack-produce", b"\x7f" + c(1, b"from-sys:openchannel\r\n\r\n" + ack) + c(1, produce))
put("server_session", "ws-fragments-ping-close", b"\x42" + c(1, produce[:20], False) + c(9, b"hb") + c(0, produce[20:]) + c(8, b"\x03\xe8"))
put("server_session", "ws-undecodable", b"\x7f" + c(1, b"\xff\xfe"))
put("server_session", "ws-unmasked", b"\x7f" + ws_frame(1, b"{}", True, None))
put("server_session", "ws-oversize", b"\x7f" + c(1, b"x" * 5000))
put("server_session", "ws-ping-then-eof", b"\xc0" + c(9, b"hb") + c(10, b"x"))
PY

for t in $targets; do
  printf '%-16s %3d files\n' "$t" "$(ls "$corpus/$t" | wc -l)"
done
