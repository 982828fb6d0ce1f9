"""Real-looking fake credentials, generated from a seed: the exact formats of the providers, never real keys.

Shared by the secret-scrubbing tests and ``benchmarks/bench_secrets.py``."""

from __future__ import annotations

import base64
import json
import random
import string

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

        claims = {"sub": str(self.r.randint(1, 10**9)), "name": "Test User", "iat": 1_700_000_000 + self.r.randint(0, 10**7)}
        return f"{seg({'alg': 'HS256', 'typ': 'JWT'})}.{seg(claims)}.{self.chars(43, URLSAFE)}"

    def password(self) -> str:
        # A password people pick or a generator makes: letters, digits and a symbol.
        return self.chars(self.r.randint(10, 18)) + self.r.choice("!#%&*?") + str(self.r.randint(0, 99))
