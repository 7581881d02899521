"""What the operator decided for export targets at start: where they may write and connect
(:class:`Confinement`) and the key that seals their secrets (:class:`SecretBox`)."""

from __future__ import annotations

from dataclasses import dataclass

from garrison.server.export.confinement import Confinement
from garrison.server.export.secrets import SecretBox
from garrison.server.settings import Settings


@dataclass(frozen=True)
class ExportPolicy:
    confinement: Confinement
    box: SecretBox

    @classmethod
    def from_settings(cls, settings: Settings) -> ExportPolicy:
        """Raises ValueError on a bad setting or key file."""
        confinement = Confinement.of(
            settings.data_dir,
            settings.export_file_dirs,
            allow_local=settings.export_allow_local,
            allow_networks=settings.export_allow_networks,
        )
        return cls(confinement, SecretBox.load_or_create(settings.resolved_secrets_key_file()))
