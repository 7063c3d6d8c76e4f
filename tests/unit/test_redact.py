"""The redactor every secret is registered with: what it scrubs, in text and in nested values."""

from __future__ import annotations

import base64
import threading

from offboard.wire.redact import MASK, Redactor


def test_a_registered_secret_is_masked_wherever_it_appears_in_text() -> None:
    r = Redactor()
    r.register("s3cret-value")
    assert r.text("token s3cret-value and again s3cret-value.") == f"token {MASK} and again {MASK}."
    assert r.text("nothing secret here") == "nothing secret here"


def test_values_shorter_than_four_characters_are_not_registered() -> None:
    # Masking "a" or "ab" would shred every line without protecting anything.
    r = Redactor()
    r.register("abc", "abcd")
    assert r.text("abc abcd") == f"abc {MASK}"


def test_a_redactor_with_nothing_registered_passes_text_through() -> None:
    assert Redactor().text("Authorization: nothing registered yet") == "Authorization: nothing registered yet"


def test_a_longer_secret_is_masked_whole_before_a_shorter_one_inside_it() -> None:
    # "wxyz" sorts after the longer secret that holds it: only length decides the order, or the
    # longer one's other parts ("abcd-", "-tail") would be left in the line.
    r = Redactor()
    r.register("wxyz", "abcd-wxyz-tail")
    assert r.text("x abcd-wxyz-tail y wxyz") == f"x {MASK} y {MASK}"
    r2 = Redactor()  # registration order does not matter
    r2.register("abcd-wxyz-tail")
    r2.register("wxyz")
    assert r2.text("abcd-wxyz-tail") == MASK


def test_basic_auth_registers_the_user_the_password_and_the_header_form() -> None:
    r = Redactor()
    r.register_basic_auth("api-user", "api-password")
    header = base64.b64encode(b"api-user:api-password").decode()
    assert r.text(f"Authorization: Basic {header}") == f"Authorization: Basic {MASK}"
    assert r.text("api-user / api-password") == f"{MASK} / {MASK}"


def test_values_are_scrubbed_through_mappings_lists_and_tuples_and_sensitive_keys_masked_whatever_they_hold() -> None:
    r = Redactor()
    r.register("live-token-1234")
    doc = {"detail": ["ok", ("live-token-1234", 3)], "Authorization": "Bearer anything", "TOKEN": 5,
           "nested": {"password": None, "api_key": "k", "api_secret": "s", "secret": "x", "note": "live-token-1234"},
           "count": 7, "flag": True}
    assert r.value(doc) == {"detail": ["ok", [MASK, 3]], "Authorization": MASK, "TOKEN": MASK,
                            "nested": {"password": MASK, "api_key": MASK, "api_secret": MASK, "secret": MASK,
                                       "note": MASK},
                            "count": 7, "flag": True}
    assert r.value("live-token-1234!") == f"{MASK}!"
    assert r.value(None) is None and r.value(3.5) == 3.5


def test_registering_from_many_threads_loses_no_secret() -> None:
    r = Redactor()
    secrets = [f"secret-{i:04d}" for i in range(200)]
    threads = [threading.Thread(target=r.register, args=(s,)) for s in secrets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.text(s) == MASK for s in secrets)
