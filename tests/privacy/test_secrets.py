"""Secret scrubbing, one kind at a time: fake credentials in the providers' exact formats, in prose, code and config
as people paste them into a chat; and look-alikes (hashes, UUIDs, identifiers, URLs, images) that must stay."""

from __future__ import annotations

import base64
import hashlib
import string
import sys
import uuid

import pytest

from benchmarks.secrets_dataset import ALNUM, B64, URLSAFE, FakeSecrets
from chatobs.processing import secrets
from chatobs.processing.secrets import SECRET_TOKEN, scrub

SEEDS = range(5)  # each kind with several generated values: one lucky format must not pass for all


def gone(text: str, *values: str) -> None:
    out = scrub(text)
    for v in values:
        assert v not in out, f"leaked {v!r} in {out!r}"
    assert SECRET_TOKEN in out, out


@pytest.mark.parametrize("seed", SEEDS)
def test_aws_key_pair_in_prose(seed: int) -> None:
    f = FakeSecrets(seed)
    kid, secret = f.aws_key_id(), f.aws_secret()
    gone(f"my key {kid} with secret {secret}", kid, secret)
    gone(f"here: {secret} (that's the secret for {kid})", kid, secret)  # the secret first
    gone(f"Access key ID: {kid}\nSecret access key: {secret}\n", kid, secret)


@pytest.mark.parametrize("seed", SEEDS)
def test_aws_key_pair_in_config(seed: int) -> None:
    f = FakeSecrets(seed)
    kid, secret = f.aws_key_id(), f.aws_secret()
    gone(f"[default]\naws_access_key_id = {kid}\naws_secret_access_key = {secret}\nregion = eu-west-1\n", kid, secret)
    gone(f'export AWS_ACCESS_KEY_ID={kid}\nexport AWS_SECRET_ACCESS_KEY="{secret}"', kid, secret)
    gone(f's3 = boto3.client("s3", aws_secret_access_key="{secret}")', secret)  # alone, by its name
    out = scrub(f"aws_access_key_id = {kid}\nregion = eu-west-1")
    assert "region = eu-west-1" in out  # the rest of the config stays readable


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kind",
    [
        "github_classic",
        "github_fine_grained",
        "slack_token",
        "slack_webhook",
        "stripe",
        "google_api_key",
        "openai",
        "anthropic",
        "jwt",
    ],
)
def test_provider_tokens(kind: str, seed: int) -> None:
    value = getattr(FakeSecrets(seed), kind)()
    gone(f"I set it to {value} but it fails", value)
    gone(f'client = Client("{value}")', value)
    gone(f'{{"config": {{"value": "{value}"}}}}', value)
    gone(value, value)


def _library_kinds(f: FakeSecrets) -> dict[str, str]:
    """Formats covered by detect-secrets' own patterns (chatobs adds no rule for them)."""
    low = string.ascii_lowercase + string.digits
    return {
        "gitlab": "glpat-" + f.chars(20, URLSAFE),
        "sendgrid": f"SG.{f.chars(22, URLSAFE)}.{f.chars(43, URLSAFE)}",
        "pypi": "pypi-AgEIcHlwaS5vcmc" + f.chars(80, URLSAFE),
        "twilio": "SK" + f.chars(32, low),
        "mailchimp": f.chars(32, low) + "-us12",
        "telegram": f"{f.r.randint(10**8, 10**9)}:{f.chars(35, URLSAFE)}",
        "discord": "M" + f.chars(23, ALNUM) + "." + f.chars(6, ALNUM) + "." + f.chars(27, ALNUM),
        "square": "sq0csp-" + f.chars(43, URLSAFE),
        "azure": "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=" + f.chars(86, B64) + "==",
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "kind", ["gitlab", "sendgrid", "pypi", "twilio", "mailchimp", "telegram", "discord", "square", "azure"]
)
def test_library_formats(kind: str, seed: int) -> None:
    value = _library_kinds(FakeSecrets(seed))[kind]
    secret = value.split("AccountKey=")[-1]
    gone(f"it says unauthorized with {value} , help", secret)


def test_npmrc_token() -> None:
    tok = "npm_" + FakeSecrets(1).chars(36)
    assert scrub(f"//registry.npmjs.org/:_authToken={tok}") == f"//registry.npmjs.org/:_authToken={SECRET_TOKEN}"


def test_slack_token_is_cut_whole() -> None:
    # The library's Slack pattern ends at the first capital letter: the tail must not survive.
    token = "xoxb-12345678901-12345678901-" + "Vhf6QF0niSNyw1psv7NTwYyy"
    assert scrub(f"bot token {token} ok") == f"bot token {SECRET_TOKEN} ok"


def test_jwt_signature_is_cut_too() -> None:
    token = FakeSecrets(3).jwt()
    assert scrub(f"header: {token}.") == f"header: {SECRET_TOKEN}."


@pytest.mark.parametrize("seed", SEEDS)
def test_private_key_blocks(seed: int) -> None:
    pem = FakeSecrets(seed).private_key()
    body = pem.splitlines()[1]
    assert (
        scrub(f"here is my key:\n{pem}\nwhy does ssh refuse it?")
        == f"here is my key:\n{SECRET_TOKEN}\nwhy does ssh refuse it?"
    )
    gone(f"pasted half of it:\n{pem[: len(pem) // 2]}", body)  # cut off: everything after BEGIN goes
    assert (
        scrub("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----")
        == "-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----"
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_credentials_in_urls(seed: int) -> None:
    pw = FakeSecrets(seed).password()
    assert (
        scrub(f"connect to postgres://admin:{pw}@db.internal:5432/app")
        == f"connect to postgres://admin:{SECRET_TOKEN}@db.internal:5432/app"
    )
    gone(f"git clone https://bob:{pw}@github.com/acme/app.git", pw)
    gone(f'REDIS_URL="redis://default:{pw}@cache:6379/0"', pw)


@pytest.mark.parametrize("seed", SEEDS)
def test_assignments_in_code_and_config(seed: int) -> None:
    f = FakeSecrets(seed)
    pw, key = f.password(), f.chars(32)
    cases = [
        f'DB_PASSWORD = "{pw}"',  # Python
        f"conn = connect(host='db', password='{pw}')",  # Python keyword argument
        f"database:\n  user: app\n  password: {pw}\n",  # YAML
        f'{{"user": "app", "api_key": "{key}"}}',  # JSON as text
        f"API_KEY={key}\nDEBUG=1\n",  # .env
        f"export SECRET_TOKEN={key}",  # shell
        f"export CLIENT_SECRET='{key}'",
        f"auth_token: {key}",
        f"$ mysql -u root --password={pw}",
    ]
    for text in cases:
        gone(text, pw, key)


def test_assignments_keep_names_and_references() -> None:
    # Code that names where a secret lives, or passes a variable, holds no secret.
    for text in [
        "api_key = os.environ['OPENAI_API_KEY']",
        "client = OpenAI(api_key=api_key)",
        'payload = {"password": password}',
        "password: ${DB_PASSWORD}",
        "password: {{ vault_db_password }}",
        "token = settings.slack_token",
        "password: null",
        "PWD=/home/app",
        "max_tokens=1500, token_count: 12",
        "Reset your password: click the link in the mail.",
        "The secret: patience",
    ]:
        assert scrub(text) == text, text


@pytest.mark.parametrize("seed", SEEDS)
def test_bearer_credentials(seed: int) -> None:
    tok = FakeSecrets(seed).chars(32)
    assert (
        scrub(f"curl -H 'Authorization: Bearer {tok}' https://api.example.com")
        == f"curl -H 'Authorization: Bearer {SECRET_TOKEN}' https://api.example.com"
    )


def test_look_alikes_stay() -> None:
    image = base64.b64encode(bytes(range(256)) * 8).decode()
    texts = [
        f"commit {hashlib.sha1(b'x').hexdigest()} fixed it; sha256 {hashlib.sha256(b'x').hexdigest()}",
        f"request id {uuid.uuid4()} and trace {uuid.uuid4().hex}",
        f'<img src="data:image/png;base64,{image}">',
        "see https://docs.python.org/3/library/re.html#re.sub and http://localhost:8000/api/chat?user=alice",
        "AbstractSingletonProxyFactoryBeanConfigurationHandler is too long a name",
        "def get_user_by_email_address_or_raise_not_found(session, email): ...",
        "the ACCOUNT_SETTINGS_PAGE_TITLE constant and SOME_VERY_LONG_ENVIRONMENT_NAME_FOR_TESTS",
        "git log 3f786850e387550fdab836ed7e6dc881de23001f..9c1185a5c5e9fc54612808977ee8f548b2258d31",
        "Skip the token limit: set max_tokens to 4096 and keep your key safe.",
    ]
    for text in texts:
        assert scrub(text) == text, text


def test_gate_skips_text_without_a_candidate() -> None:
    assert not secrets.might_hold_secret("Hello! Can you help me parse a date in Python? It fails on 2024-01-05.")
    assert secrets.might_hold_secret("my key " + FakeSecrets(1).aws_key_id())
    for kind in ("github_classic", "slack_webhook", "jwt", "private_key", "anthropic", "stripe"):
        assert secrets.might_hold_secret(getattr(FakeSecrets(2), kind)()), kind


def test_scrub_is_idempotent() -> None:
    f = FakeSecrets(9)
    text = f"key {f.aws_key_id()} secret {f.aws_secret()} and password='{f.password()}' and {f.jwt()}"
    once = scrub(text)
    assert scrub(once) == once


def test_benchmark_corpus_has_no_leak_and_no_false_positive() -> None:
    from benchmarks.bench_secrets import evaluate

    res = evaluate()
    assert res["leak_texts"] > 100 and res["bait_texts"] > 30
    assert res["leaks_by_kind"] == {k: 0 for k in res["leaks_by_kind"]}
    assert res["false_positives"] == 0, res["false_positives_by_kind"]


def test_missing_detect_secrets_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulated: the package is installed here, so its absence is faked by blocking its import.
    from chatobs.config import ConfigError

    monkeypatch.setitem(sys.modules, "detect_secrets.plugins.aws", None)
    secrets._rules.cache_clear()
    try:
        with pytest.raises(ConfigError, match="detect-secrets"):
            secrets.warm()
    finally:
        monkeypatch.undo()
        secrets._rules.cache_clear()
    secrets.warm()
