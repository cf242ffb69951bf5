"""The bootstrap entries the gateway reads: which server keys are read in G101's form."""

from __future__ import annotations

from pathlib import Path

from socp.gateway.bootstrap_view import g101_address_of, g101_addresses
from socp.protocol import crypto
from socp.protocol.key_forms import KeyForm, in_form


def test_only_a_key_pinned_with_the_opt_in_is_read_g101s_way(tmp_path: Path, keys) -> None:
    g101, other = crypto.encode_public_key(keys[1]), crypto.encode_public_key(keys[2])
    path = tmp_path / "bootstrap.yaml"
    path.write_text(f'bootstrap_servers:\n  - {{host: "127.0.0.1", port: 9470, pubkey: "{g101}", g101_link: true}}\n'
                    f'  - {{host: "127.0.0.1", port: 9471, pubkey: "{other}"}}\n')
    addresses = g101_addresses(str(path))
    assert addresses == {g101: "127.0.0.1:9470"}
    assert g101_address_of(addresses, in_form(g101, KeyForm.PEM_B64URL)) == "127.0.0.1:9470"   # any key form
    assert g101_address_of(addresses, other) == "" and g101_address_of(addresses, "junk") == ""
    assert g101_addresses(str(tmp_path / "missing.yaml")) == {} and g101_addresses("") == {}
