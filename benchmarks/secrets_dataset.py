"""Real-looking fake credentials, generated from a seed (the exact formats of the providers, never real keys), and a
labelled corpus for ``bench_secrets.py``: texts that leak a credential, and look-alikes that hold none.

Shared by the secret-scrubbing tests and the benchmark."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid

ALNUM = string.ascii_letters + string.digits
URLSAFE = ALNUM + "-_"
B64 = ALNUM + "+/"


class FakeSecrets:
    def __init__(self, seed: int = 1) -> None:
        self.r = random.Random(seed)

    def chars(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def aws_key_id(self) -> str:
        return self.r.choice(("AKIA", "ASIA")) + self.chars(16, string.ascii_uppercase + "234567")

    def aws_secret(self) -> str:
        while True:  # random 40 base64 characters are mixed case but for ~1e-10 of draws
            s = self.chars(40, B64)
            if any(c.islower() for c in s) and any(c.isupper() for c in s):
                return s

    def github_classic(self) -> str:
        return self.r.choice(("ghp_", "gho_", "ghu_", "ghs_", "ghr_")) + self.chars(36)

    def github_fine_grained(self) -> str:
        return f"github_pat_{self.chars(22)}_{self.chars(59)}"

    def slack_token(self) -> str:
        kind = self.r.choice("bpa")
        return f"xox{kind}-{self.r.randint(10**10, 10**11)}-{self.r.randint(10**10, 10**11)}-{self.chars(24)}"

    def slack_webhook(self) -> str:
        up = string.ascii_uppercase + string.digits
        return f"https://hooks.slack.com/services/T{self.chars(8, up)}/B{self.chars(10, up)}/{self.chars(24)}"

    def stripe(self) -> str:
        return self.r.choice(("sk_live_", "rk_live_", "sk_test_", "pk_live_", "whsec_live_")) + self.chars(24)

    def google_api_key(self) -> str:
        return "AIza" + self.chars(35, URLSAFE)

    def openai(self) -> str:
        # The current formats: sk-proj-/sk-svcacct- with the "T3BlbkFJ" marker in the middle, and the legacy one.
        prefix = self.r.choice(("sk-proj-", "sk-svcacct-", "sk-"))
        if prefix == "sk-":
            return f"sk-{self.chars(20)}T3BlbkFJ{self.chars(20)}"
        return f"{prefix}{self.chars(74, URLSAFE)}T3BlbkFJ{self.chars(74, URLSAFE)}"

    def anthropic(self) -> str:
        return f"sk-ant-api03-{self.chars(93, URLSAFE)}AA"

    def private_key(self) -> str:
        kind = self.r.choice(("RSA ", "EC ", "OPENSSH ", ""))
        body = "\n".join(self.chars(64, B64) for _ in range(self.r.randint(3, 8)))
        return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"

    def jwt(self) -> str:
        def seg(d: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()

        claims = {
            "sub": str(self.r.randint(1, 10**9)),
            "name": "Test User",
            "iat": 1_700_000_000 + self.r.randint(0, 10**7),
        }
        return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.{self.chars(43, URLSAFE)}"

    def password(self) -> str:
        # A password people pick or a generator makes: letters, digits and a symbol.
        return self.chars(self.r.randint(10, 18)) + self.r.choice("!#%&*?") + str(self.r.randint(0, 99))


# (kind, text, the values that must not survive)
Leak = tuple[str, str, list[str]]
# (kind, text): must come out unchanged
Bait = tuple[str, str]


def leaks(seed: int = 0, per_kind: int = 4) -> list[Leak]:
    out: list[Leak] = []
    for i in range(per_kind):
        f = FakeSecrets(seed * 1000 + i)
        kid, aws = f.aws_key_id(), f.aws_secret()
        out += [
            ("aws pair, prose", f"my key {kid} with secret {aws}, is that right?", [kid, aws]),
            ("aws pair, prose", f"I rotated it. New one: {kid} / {aws}", [kid, aws]),
            ("aws pair, config", f"[default]\naws_access_key_id = {kid}\naws_secret_access_key = {aws}\n", [kid, aws]),
            ("aws pair, env", f"export AWS_ACCESS_KEY_ID={kid}\nexport AWS_SECRET_ACCESS_KEY={aws}", [kid, aws]),
        ]
        for kind in (
            "github_classic",
            "github_fine_grained",
            "slack_token",
            "slack_webhook",
            "stripe",
            "google_api_key",
            "openai",
            "anthropic",
            "jwt",
        ):
            v = getattr(f, kind)()
            name = kind.replace("_", " ")
            out += [
                (name, f"why does this fail? I pass {v} and get a 401", [v]),
                (name, f'client = make_client(key="{v}", timeout=30)', [v]),
            ]
        pem = f.private_key()
        out.append(
            ("private key", f"the server says bad key:\n{pem}\nany idea?", [line for line in pem.splitlines()[1:-1]])
        )
        pw, key = f.password(), f.chars(32)
        out += [
            ("url credentials", f"DATABASE_URL=postgres://app:{pw}@db.internal:5432/prod", [pw]),
            ("url credentials", f"clone it with https://deploy:{pw}@git.example.com/acme/app.git", [pw]),
            ("assignment, python", f'SMTP_PASSWORD = "{pw}"', [pw]),
            ("assignment, python", f"requests.post(url, auth=('bot', '{pw}'), json={{'api_key': '{key}'}})", [key]),
            ("assignment, yaml", f"db:\n  host: db\n  password: {pw}\n", [pw]),
            ("assignment, json", f'{{"service": "billing", "client_secret": "{key}"}}', [key]),
            ("assignment, .env", f"STRIPE_WEBHOOK_SECRET={key}\nDEBUG=false\n", [key]),
            ("assignment, shell", f"export OPENAI_API_KEY={key} && python app.py", [key]),
            ("bearer", f"curl -H 'Authorization: Bearer {key}' https://api.example.com/v1/me", [key]),
        ]
    return out


def baits(seed: int = 0, per_kind: int = 4) -> list[Bait]:
    r = random.Random(seed)
    image = base64.b64encode(bytes(r.randrange(256) for _ in range(3000))).decode()
    out: list[Bait] = [
        ("prose", "Can you help me reset my password? The reset link says the token expired."),
        ("prose", "Where do I find my API key in the dashboard? I lost the old one."),
        ("prose", "Keep your secret key safe and never paste it into a chat like this one."),
        ("prose", "The key to good pizza is a long, cold fermentation of the dough."),
        ("prose", "Password: use at least twelve characters, mixing words you can remember."),
        ("prose", "My order 4417 from 2024-03-05 never arrived, tracking says delivered at 14:32."),
        ("code", "def authenticate(user, password):\n    return check_password_hash(user.password_hash, password)"),
        ("code", "client = OpenAI(api_key=os.environ['OPENAI_API_KEY'])"),
        ("code", "token = request.headers.get('Authorization', '').removeprefix('Bearer ')"),
        ("code", 'payload = {"username": username, "password": password}'),
        ("code", "max_tokens = 1024\ntoken_count: int = len(tokens)\nif token_count > max_tokens: raise ValueError"),
        (
            "code",
            "const apiKey = process.env.STRIPE_KEY;\nfetch(url, { headers: { Authorization: `Bearer ${apiKey}` } })",
        ),
        ("config", "database:\n  password: ${DB_PASSWORD}\n  user: app\n"),
        ("config", "api_key: {{ vault_api_key }}\nsecret: null\n"),
        ("long identifiers", "AbstractSingletonProxyFactoryBean and SimpleBeanFactoryAwareAspectInstanceFactory"),
        ("long identifiers", "test_checkout_flow_applies_discount_before_shipping_estimate_when_cart_is_mixed"),
        ("long identifiers", "CHATOBS_MASKING_TIMEOUT_MS and OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        ("base64 image", f'<img src="data:image/png;base64,{image}">'),
        ("urls", "see https://docs.python.org/3/library/re.html#re.sub and http://localhost:8000/api/chat?user=alice"),
        ("urls", "https://github.com/acme/app/blob/9c1185a5c5e9fc54612808977ee8f548b2258d31/src/app.py#L42"),
        ("urls", "postgres://db.internal:5432/prod and mailto:support@example.com"),
    ]
    for i in range(per_kind):
        data = f"{seed}-{i}".encode()
        out += [
            (
                "uuid",
                f"request {uuid.UUID(int=r.getrandbits(128))} failed, trace {uuid.UUID(int=r.getrandbits(128)).hex}",
            ),
            ("hashes", f"md5 {hashlib.md5(data).hexdigest()} sha256 {hashlib.sha256(data).hexdigest()}"),
            ("hashes", f"image digest sha256:{hashlib.sha256(data + b'i').hexdigest()}"),
            ("hashes", f"integrity sha512-{base64.b64encode(hashlib.sha512(data).digest()).decode()}"),
            (
                "git sha",
                f"reverted {hashlib.sha1(data).hexdigest()} (was {hashlib.sha1(data + b'x').hexdigest()[:12]})",
            ),
        ]
    return out
