"""Labelled evaluation set for the privacy pipeline, generated with Faker from a fixed seed.

``python -m benchmarks.privacy_dataset`` rewrites ``benchmarks/data/privacy_eval.jsonl`` (deterministic: the same
file every run). Each line: ``{"id", "kind", "text", "pii": [{"type", "value", "start", "end"}]}`` where kind is
``chat`` (a user or assistant message with PII), ``json`` (tool arguments/results), ``code_pii`` (code quoting PII),
``code`` / ``prose`` (no PII at all: every finding there is a false positive).

Entity types: the Presidio names chatobs masks by default, ``CREDENTIAL`` (handled by the secret scrubber), and
``PERSON`` / ``LOCATION`` (only the NER mode is expected to find those).
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from pathlib import Path
from typing import Any

from faker import Faker

SEED = 20261123
OUT = Path(__file__).resolve().parent / "data" / "privacy_eval.jsonl"

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


class Gen:
    def __init__(self, seed: int = SEED) -> None:
        self.rnd = random.Random(seed)
        Faker.seed(seed)
        self.us = Faker("en_US")
        self.gb = Faker("en_GB")
        self.de = Faker("de_DE")
        self.us.seed_instance(seed)
        self.gb.seed_instance(seed + 1)
        self.de.seed_instance(seed + 2)

    # --- values -------------------------------------------------------------------------------------------------
    def email(self) -> str:
        return self.rnd.choice([self.us.email, self.us.company_email, self.us.free_email, self.gb.email])()

    def phone(self) -> str:
        r = self.rnd.random()
        if r < 0.6:
            return self.us.phone_number()
        if r < 0.8:
            return self.gb.phone_number()
        if r < 0.9:
            return self.de.phone_number()
        d = self.us.msisdn()[3:]
        return f"+1 {d[:3]} {d[3:6]} {d[6:]}"

    def card(self) -> str:
        num = self.us.credit_card_number()
        style = self.rnd.random()
        if style < 0.4:
            return num
        sep = " " if style < 0.75 else "-"
        if len(num) == 15:
            return sep.join([num[:4], num[4:10], num[10:]])
        return sep.join(num[i : i + 4] for i in range(0, len(num), 4))

    def ssn(self) -> str:
        return self.us.ssn()

    def iban(self) -> str:
        iban = self.rnd.choice([self.us.iban, self.gb.iban, self.de.iban])()
        if self.rnd.random() < 0.3:
            return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
        return iban

    def ip(self) -> str:
        return self.us.ipv4_public() if self.rnd.random() < 0.8 else self.us.ipv6()

    def crypto(self) -> str:
        if self.rnd.random() < 0.6:
            return _b58check(bytes([self.rnd.choice([0, 5])]) + self.rnd.randbytes(20))
        return "0x" + self.rnd.randbytes(20).hex()

    def address(self) -> str:
        f = self.us
        street = f.street_address()
        if self.rnd.random() < 0.5:
            return f"{street}, {f.city()}, {f.state_abbr()} {f.zipcode()}"
        return street

    def credential(self) -> str:
        rnd = self.rnd
        alnum = string.ascii_letters + string.digits

        def tok(n: int, chars: str = alnum) -> str:
            return "".join(rnd.choice(chars) for _ in range(n))

        return rnd.choice(
            [
                lambda: "sk-proj-" + tok(48, alnum + "-_"),
                lambda: "sk-" + tok(48),
                lambda: "sk-ant-api03-" + tok(80, alnum + "-_"),
                lambda: "ghp_" + tok(36),
                lambda: "github_pat_" + tok(22) + "_" + tok(59),
                lambda: "AKIA" + tok(16, string.ascii_uppercase + string.digits),
                lambda: "xoxb-" + tok(12, string.digits) + "-" + tok(12, string.digits) + "-" + tok(24),
                lambda: "AIza" + tok(35, alnum + "-_"),
                lambda: "sk_live_" + tok(24),
                lambda: "hf_" + tok(34),
                lambda: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI" + tok(20) + "." + tok(43, alnum + "-_"),
            ]
        )()

    def person(self) -> str:
        return self.us.name()

    def city(self) -> str:
        return self.us.city()


CHAT_TEMPLATES: dict[str, list[str]] = {
    "EMAIL_ADDRESS": [
        "Hi, my email is {v}, can you reset my account?",
        "please send the invoice to {v} thanks",
        "I never got the confirmation at {v}. Can you check?",
        "Contact: {v}",
        "Can you cc {v} on the ticket?",
    ],
    "PHONE_NUMBER": [
        "You can call me at {v} after 5pm.",
        "my number is {v}",
        "Phone: {v}",
        "text me on {v} when the order ships",
        "Reach the front desk at {v} or just reply here.",
        "I tried {v} twice and nobody answered",
    ],
    "CREDIT_CARD": [
        "My card number is {v} and it keeps getting declined",
        "charge it to {v} please",
        "Card: {v} exp 09/27",
        "why was {v} billed twice this month?",
    ],
    "US_SSN": [
        "My SSN is {v}, do you need anything else?",
        "social security number {v}",
        "for the tax form: {v}",
        "ssn: {v}",
    ],
    "IBAN_CODE": [
        "Please wire the refund to {v}",
        "IBAN {v}",
        "my bank account is {v}, name on account is the same",
    ],
    "IP_ADDRESS": [
        "The server at {v} keeps timing out",
        "my IP is {v}, can you whitelist it?",
        "login attempts from {v} were not me",
    ],
    "CRYPTO": [
        "send the payout to {v}",
        "my wallet: {v}",
        "Is {v} the right deposit address?",
    ],
    "STREET_ADDRESS": [
        "Ship it to {v}",
        "I live at {v}, is delivery available?",
        "new billing address: {v}",
        "The package went to {v} instead of my office",
    ],
    "CREDENTIAL": [
        "here is my key {v} why does it return 401?",
        "export API_TOKEN={v}",
        "curl -H 'Authorization: Bearer {v}' https://api.example.com/v1/me",
        "I accidentally pasted {v} in the chat, is that bad?",
        "config: OPENAI_API_KEY={v}",
    ],
}

NER_TEMPLATES = [
    ("Hi, I'm {p} and I'm writing from {c}.", ["PERSON", "LOCATION"]),
    ("Please tell {p} that the meeting moved.", ["PERSON"]),
    ("We are relocating the team to {c} next spring.", ["LOCATION"]),
    ("{p} approved the refund yesterday.", ["PERSON"]),
]

CODE_SNIPPETS = [
    "def load(path: str) -> dict:\n    with open(path) as f:\n        return json.load(f)\n",
    'import os\nclient = OpenAI(api_key=os.environ["OPENAI_API_KEY"])\nresp = client.chat.completions.create(model="gpt-4o", max_tokens=512)\n',
    'for i in range(10):\n    print(f"step {i}: loss={losses[i]:.4f}")\n',
    "SELECT id, created_at FROM orders WHERE total > 100 ORDER BY created_at DESC LIMIT 50;",
    'app.run(host="127.0.0.1", port=8000, debug=True)',
    "pip install fastapi==0.115.2 uvicorn[standard]==0.32.0",
    'Traceback (most recent call last):\n  File "/srv/app/main.py", line 42, in handler\n    result = compute(x)\nZeroDivisionError: division by zero',
    "const url = `${BASE_URL}/api/v3/users/${userId}`;\nfetch(url).then(r => r.json());",
    'git checkout -b fix/login-timeout && git commit -m "retry on 503"',
    "docker run -p 8080:80 -v $(pwd)/data:/data nginx:1.27",
    'ts = 1700000000000  # milliseconds since epoch\nuuid = "3fa85f64-5717-4562-b3fc-2c963f66afa6"',
    'sha = "9fceb02d0ae598e95dc970b74767f19372d61af8"\nversion = "2.14.3"',
    "kubectl scale deployment/api --replicas=3 -n prod",
    "x = np.zeros((1024, 768), dtype=np.float32)\nassert x.shape == (1024, 768)",
    'if retries > 3:\n    raise TimeoutError("gave up after 3 retries")',
    "password = getpass.getpass()\ntoken = auth.login(user, password)",
    "CREATE INDEX idx_orders_user ON orders(user_id);",
    "npm install react@18.3.1 --save-exact",
    "open('report_2024-06-30.csv').read()",
    "color: #3fa2b5; margin: 0 auto; max-width: 1280px;",
    "curl -s http://localhost:9090/metrics | grep http_requests_total",
    'logger.info("processed %d items in %.2fs", n, elapsed)',
    "upgrade to v3 and rerun main.py with --config config.yaml",
    "matrix = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]",
    "Error 0x80070005: access denied while writing C:\\Users\\Public\\log.txt",
]

PROSE = [
    "Can you summarize the attached article in three bullet points?",
    "What's the difference between a list and a tuple in Python?",
    "Thanks, that fixed it! The build is green again.",
    "The meeting is at 10:30 in room 4B, bring the Q3 numbers.",
    "It costs $1,299.99 with free shipping over $50.",
    "Order #48213 arrived on 2024-03-05 but the box was damaged.",
    "Please translate 'good morning' into French and Spanish.",
    "Version 2.1.0 fixed the crash; 2.1.1 broke the export again.",
    "Set the temperature to 0.7 and top_p to 0.95 for creative writing.",
    "I upgraded from v2 to v3 last week and now the dashboard loads slowly.",
    "The results file is results.json, next to README.md in the repo root.",
    "We sold 12,500 units in 2023 and expect 15,000 in 2024.",
    "Write a haiku about autumn rain.",
    "How many tokens is a 3000 word essay roughly?",
    "My flight is UA 2215 and it leaves at 07:45.",
]


def _find(text: str, value: str) -> tuple[int, int]:
    start = text.index(value)
    return start, start + len(value)


def generate(n_per_entity: int = 60, seed: int = SEED) -> list[dict[str, Any]]:
    g = Gen(seed)
    rnd = g.rnd
    values = {
        "EMAIL_ADDRESS": g.email,
        "PHONE_NUMBER": g.phone,
        "CREDIT_CARD": g.card,
        "US_SSN": g.ssn,
        "IBAN_CODE": g.iban,
        "IP_ADDRESS": g.ip,
        "CRYPTO": g.crypto,
        "STREET_ADDRESS": g.address,
        "CREDENTIAL": g.credential,
    }
    records: list[dict[str, Any]] = []

    def add(kind: str, text: str, pii: list[tuple[str, str]]) -> None:
        spans = []
        for typ, value in pii:
            s, e = _find(text, value)
            spans.append({"type": typ, "value": value, "start": s, "end": e})
        records.append({"id": len(records), "kind": kind, "text": text, "pii": spans})

    for typ, make in values.items():
        for _ in range(n_per_entity):
            v = make()
            add("chat", rnd.choice(CHAT_TEMPLATES[typ]).format(v=v), [(typ, v)])
    # Messages mixing several kinds of PII, as support chats do.
    for _ in range(n_per_entity):
        e, p, a = g.email(), g.phone(), g.address()
        add(
            "chat",
            f"Hi! Update my profile: email {e}, phone {p}, address {a}. Thanks!",
            [("EMAIL_ADDRESS", e), ("PHONE_NUMBER", p), ("STREET_ADDRESS", a)],
        )
    # NER-only entities (names, places).
    for _ in range(n_per_entity):
        tmpl, kinds = rnd.choice(NER_TEMPLATES)
        p, c = g.person(), g.city()
        text = tmpl.format(p=p, c=c)
        add("chat", text, [(k, p if k == "PERSON" else c) for k in kinds])
    # Tool arguments and results (JSON).
    for _ in range(n_per_entity):
        e, p = g.email(), g.phone()
        args = {"customer": {"email": e, "phone": p}, "limit": 10, "include_history": True}
        add("json", json.dumps(args), [("EMAIL_ADDRESS", e), ("PHONE_NUMBER", p)])
    for _ in range(n_per_entity // 2):
        c, s = g.card(), g.ssn()
        result = {"status": "ok", "account": {"card_on_file": c, "tax_id": s, "tier": "gold"}}
        add("json", json.dumps(result), [("CREDIT_CARD", c), ("US_SSN", s)])
    # Code quoting PII.
    for _ in range(n_per_entity // 2):
        e, ip = g.email(), g.us.ipv4_public()
        add("code_pii", f'ADMIN_EMAIL = "{e}"\nALLOWED_HOSTS = ["{ip}"]\n', [("EMAIL_ADDRESS", e), ("IP_ADDRESS", ip)])
    # No PII at all.
    for text in CODE_SNIPPETS:
        add("code", text, [])
    for text in PROSE:
        add("prose", text, [])
    for _ in range(n_per_entity):
        add("prose", g.us.paragraph(nb_sentences=3), [])
    rnd.shuffle(records)
    for i, r in enumerate(records):
        r["id"] = i
    return records


def load() -> list[dict[str, Any]]:
    return [json.loads(line) for line in OUT.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    records = generate()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    print(f"wrote {len(records)} records to {OUT}")


if __name__ == "__main__":
    main()
