"""Form validation: types, constraints, defaults and per-field messages."""

from __future__ import annotations

import pytest

from workflows import EnumOption, FormField, FormValidationError, validate_form_data

FIELDS = (
    FormField("confirmed", "是否属实", "boolean", required=True),
    FormField("severity", "严重程度", "enum", default="medium",
              options=(EnumOption("low", "低"), EnumOption("medium", "中"))),
    FormField("note", "说明", "string", maxlength=5),
    FormField("people", "人数", "long", min=0, max=500, default=2),
    FormField("title", "标题", "string", required=True, minlength=2),
    FormField("on", "日期", "date"),
    FormField("source", "来源", "string", readonly=True, default="系统"),
)


def test_converts_and_fills_defaults():
    values = validate_form_data(FIELDS, {"confirmed": "true", "people": "12", "title": "燃气",
                                         "on": "2026-03-01"})
    assert values == {"confirmed": True, "severity": "medium", "note": None, "people": 12,
                      "title": "燃气", "on": "2026-03-01", "source": "系统"}


def test_reports_every_bad_field():
    with pytest.raises(FormValidationError) as caught:
        validate_form_data(FIELDS, {"confirmed": "maybe", "severity": "huge", "note": "too long",
                                    "people": 501, "title": "x", "on": "01/03/2026",
                                    "source": "me", "extra": 1})
    assert caught.value.errors == {
        "confirmed": "must be true or false",
        "severity": "must be one of: low, medium",
        "note": "must have at most 5 characters",
        "people": "must be at most 500",
        "title": "must have at least 2 characters",
        "on": "must be a date (YYYY-MM-DD)",
        "source": "is read-only",
        "extra": "is not a field of this form",
    }
    assert "people: must be at most 500" in str(caught.value)


def test_required_fields():
    with pytest.raises(FormValidationError) as caught:
        validate_form_data(FIELDS, {"title": "  "})
    assert caught.value.errors == {"confirmed": "is required", "title": "is required"}


@pytest.mark.parametrize("raw, expected", [
    (True, True), (False, False), ("on", True), ("false", False), ("0", False),
])
def test_boolean_spellings(raw, expected):
    field = (FormField("b", "B", "boolean"),)
    assert validate_form_data(field, {"b": raw}) == {"b": expected}


@pytest.mark.parametrize("raw", [True, "1.5", 2.5, "ten"])
def test_long_refuses_non_integers(raw):
    with pytest.raises(FormValidationError) as caught:
        validate_form_data((FormField("n", "N", "long"),), {"n": raw})
    assert caught.value.errors == {"n": "must be a whole number"}


def test_unticked_optional_checkbox_is_false():
    assert validate_form_data((FormField("b", "B", "boolean"),), {}) == {"b": False}


def test_form_fields_serialise(alert_version):
    fields = alert_version.form_fields("alert_handling", "confirm_alert")
    as_dict = fields[1].to_dict()
    assert as_dict["options"] == [{"id": "low", "name": "低"}, {"id": "medium", "name": "中"},
                                  {"id": "high", "name": "高"}]
    assert as_dict["default"] == "medium"


def test_datetime_widget_accepts_aware_times_only():
    from workflows.forms import FormField, convert_value

    field = FormField(id="arrived_at", label="到场时间", type="date",
                      properties=(("widget", "datetime"),))
    assert convert_value(field, "2026-07-26T10:00+08:00") == "2026-07-26T10:00:00+08:00"
    with pytest.raises(ValueError, match="time zone"):
        convert_value(field, "2026-07-26T10:00")
    with pytest.raises(ValueError, match="date and time"):
        convert_value(field, "yesterday")



@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "0001-01-01T12:00:00+00:00",
                                    "9999-12-31T23:59:59-14:00", "9999-12-31T00:00:00+00:00"])
def test_datetime_widget_refuses_the_ends_of_the_calendar(moment):
    """A time no time zone could show would break every page that shows it, in local time."""
    from workflows.forms import FormField, convert_value

    field = FormField(id="arrived_at", label="到场时间", type="date",
                      properties=(("widget", "datetime"),))
    with pytest.raises(ValueError, match="date and time"):
        convert_value(field, moment)
    assert convert_value(field, "0001-01-03T00:00+14:00") == "0001-01-03T00:00:00+14:00"
