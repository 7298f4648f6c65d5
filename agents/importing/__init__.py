"""Importing a project: a Conduet-native document or a Voiceflow `.vf` export, told apart by their shape. Either
way the result is a project document (validated like every write) and a list of warnings saying what did not
come across."""
from agents.importing.common import ImportRefused
from agents.importing.native import is_native, native_convert
from agents.importing.voiceflow import is_voiceflow, voiceflow_convert

__all__ = ["ImportRefused", "document_import"]


def document_import(data) -> tuple[dict, list[str], str]:
    """(project document, warnings, the detected format: "conduet" or "voiceflow"); `ImportRefused` when the body
    is neither, or cannot be imported."""
    if is_voiceflow(data):
        document, warnings = voiceflow_convert(data)
        return document, warnings, "voiceflow"
    if is_native(data):
        document, warnings = native_convert(data)
        return document, warnings, "conduet"
    raise ImportRefused("The body is neither a Conduet project document (with workflows) nor a Voiceflow export "
                        "(with diagrams and version).", {"non_field_errors": ["Unrecognised document format."]})
