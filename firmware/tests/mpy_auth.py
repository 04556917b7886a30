# Runs on MicroPython: the firmware's command authentication against the signed golden vectors.
# argv[1]: frames.json, argv[2]: an empty directory for the key and counter files. Prints JSON.
import binascii
import json
import sys

from mesofw.auth import Auth
from mesoprotocol import spec

doc = json.load(open(sys.argv[1]))
d = sys.argv[2]
out = {"unpaired": [], "fresh": [], "replayed": [], "forged": [], "wrong_key": [], "after_reset": [],
       "other_session": [], "no_session": []}
auth = Auth(d + "/key", d + "/counter")
signed = []
for case in doc["cases"]:
    if not case.get("encode"):
        continue
    frame = binascii.unhexlify(case["hex"])
    t = frame[4]
    if t in spec.AUTHENTICATED:
        session = case["results"][0]["fields"].get("host_session", 0)
        signed.append((case["name"], t, frame[spec.HEADER_SIZE : -spec.CRC_SIZE], len(spec.MESSAGES[t][1]), session))


def fresh(session):
    # each vector on its own: every one is signed with a small counter, in the vectors' session
    auth.counter = 0
    auth.session = session
    auth.session_counter = 0


for name, t, payload, n, session in signed:
    out["unpaired"].append(auth.check(t, payload, n))
auth.pair(binascii.unhexlify(doc["test_key"]))
for name, t, payload, n, session in signed:
    fresh(session)
    out["fresh"].append([name, auth.check(t, payload, n)])
    out["replayed"].append(auth.check(t, payload, n))
    forged = bytearray(payload)
    forged[0] ^= 1  # a field changed after signing
    fresh(session)
    out["forged"].append(auth.check(t, forged, n))
    if session:
        fresh(session + 1)  # another host's session is open
        out["other_session"].append(auth.check(t, payload, n))
        fresh(0)  # none open (the device restarted, or the session was closed)
        out["no_session"].append(auth.check(t, payload, n))
other = Auth(d + "/key2", d + "/counter2")
other.pair(bytes(16))
for name, t, payload, n, session in signed:
    out["wrong_key"].append(other.check(t, payload, n))
# the counter's high-water mark survives a reset: an OPEN accepted before it is refused after it,
# and the session it opened is gone
auth.counter = 0
auth.reserved = 0
name, t, payload, n, _ = [s for s in signed if s[1] == spec.OPEN][0]
auth.check(t, payload, n)
again = Auth(d + "/key", d + "/counter")
out["after_reset"] = [again.paired(), again.counter, again.check(t, payload, n), again.session]
print(json.dumps(out))
