"""Request bodies as closed JSON objects: every API view that takes one validates it here, so that an unknown key is
a 400 naming it (a misspelt field is never silently ignored) and a body that is not an object says so."""
from rest_framework import serializers


def closed_object(serializer_class, data, *, ignore: tuple[str, ...] = (), empty_is_object: bool = False) -> dict:
    """The serializer's validated data. `ignore` names keys accepted and dropped (what a GET returned and a client
    sends back); with `empty_is_object`, an empty body is `{}` (endpoints whose fields are all optional)."""
    if empty_is_object and (data is None or data == ""):
        data = {}
    if not isinstance(data, dict):
        raise serializers.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    if ignore:
        data = {key: value for key, value in data.items() if key not in ignore}
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    unknown = set(data) - set(serializer.fields)
    if unknown:
        raise serializers.ValidationError({key: ["Unknown field."] for key in sorted(unknown)})
    return serializer.validated_data
