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
targets="frame message_json register_answer http_response notify_body keys cert_der client_session"
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
PY

for t in $targets; do
  printf '%-16s %3d files\n' "$t" "$(ls "$corpus/$t" | wc -l)"
done
