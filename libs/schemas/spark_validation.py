"""`parse_transaction` as built-in Spark SQL expressions, for Spark's real-time mode.

Why: real-time mode refuses Python UDFs, so the detector's `mapInArrow` validator cannot
run there. `validate` builds the same checks as a plan of built-in expressions (regexes,
`try_parse_json`, `variant_get`, `schema_of_variant`, `try_to_timestamp`), derived from
`TRANSACTION_FIELDS` and the limits and ISO sets in libs/schemas, so there is still one
definition of a good transaction. `parse_transaction` stays the reference (the other
services use it); `spark_validation_test` runs both on the same corpus and requires the
same verdict, reason and values for every record.

Checks, in parse_transaction's order (the first failing one wins):

| reason | how |
| --- | --- |
| empty, too_large | `octet_length` of the value |
| not_utf8 | `is_valid_utf8` |
| not_json | `try_parse_json` is null (and not for a duplicate key or depth, below); |
| | content after the value (Spark's parser stops after one value, orjson refuses); |
| | a number beyond a double (Spark reads 1e400 as Infinity, orjson refuses) |
| too_deep | strings masked, innermost `[...]`/`{...}` replaced by `@` MAX_DEPTH times: a |
| | bracket left means deeper than MAX_DEPTH |
| not_object | the first character is not `{` |
| duplicate_key | `try_parse_json` refuses duplicate keys (any depth, any escape); it is told |
| | from a syntax error by parsing again with every key renamed to a unique one |
| bad_amount | an exponent no Python `Decimal` holds (raised by `codec.load_object`) |
| missing_field .. | per field in contract order: missing_field (all fields first), |
| bad_amount | bad_type (`schema_of_variant`), too_long (`char_length`), |
| | control_character (a class built from Python's `unicodedata`), bad_timestamp, |
| | bad_amount (judged on the number's exact text) |
| bad_uuid .. | then the contract rules: bad_uuid, empty_field (Python's `str.isspace` |
| future_event_time | set), bad_amount (<= 0), bad_currency, bad_country (the ISO sets as |
| | literals), future_event_time (against the `now` column) |

Amounts are judged on the text as written, like the reference: Spark's variant keeps
integers and plain decimals exactly, but reads a number with an exponent (or more than 38
digits) as a double, so for those the text is recovered by re-parsing the payload with
every number quoted as a string (rare; only those rows pay for it).

Known gaps (inputs on which this and `parse_transaction` can disagree; none occurs in the
differential corpus, see spark_validation_test):
- Nesting deeper than Spark's parser allows (1,000) is reported as too_deep when the
  payload has more than 1,000 brackets, else not_json; orjson's limit is 1,024 and it
  reports a syntax error found before that depth as not_json.
- Content after a value nested deeper than MAX_DEPTH is too_deep here, not_json there.
- Spark's parser (Jackson) refuses a number longer than 1,000 characters and a key longer
  than 50,000 characters (not_json and duplicate_key here); orjson reads them.
"""

from __future__ import annotations

import sys
import unicodedata
from datetime import timedelta
from decimal import Decimal
from functools import cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from libs.schemas.codec import (
    DEFAULT_MAX_BYTES,
    MAX_DEPTH,
    MAX_OFFSET,
    MIN_OFFSET,
    MIN_TIMESTAMP,
)
from libs.schemas.fields import Field, Kind, Reason
from libs.schemas.transaction import (
    DEFAULT_MAX_FUTURE_SKEW,
    ISO_COUNTRIES,
    ISO_CURRENCIES,
    TRANSACTION_FIELDS,
)

# Columns `validate` adds: the reason (null when valid), then every contract field.
REASON_COLUMN = "error_reason"

# --- regexes (Java syntax) ------------------------------------------------------------

_WS = r"[ \t\n\r]"  # JSON whitespace: nothing else may stand between tokens
# A JSON string token; possessive quantifiers, so a 60 KiB string costs no stack.
_STRING = r'"[^"\\]*+(?:\\[\s\S][^"\\]*+)*+"'
_NUMBER = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
# An innermost array or object of the masked text (no bracket inside).
_CONTAINER = r"\[[^\[\]{}]*+\]|\{[^\[\]{}]*+\}"
# What a whole masked, collapsed, single JSON value looks like.
_ONE_VALUE = rf"^{_WS}*+(?:@|\"\"|{_NUMBER}|true|false|null){_WS}*+\z"
# Tokens that cover any text: keys (a string and its colon), strings, the rest.
_TOKEN = rf'{_STRING}{_WS}*+:|{_STRING}|[^"]++|"'
# orjson's exact limit is 1,024; Spark's parser gives up at 1,000.
_SPARK_MAX_NESTING = 1000
# A double overflows past ~1.8e308: only numbers with an exponent or 309 digits can.
_MAYBE_HUGE = r"\d[eE]|\d{309}"

_UUID = r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\z"
# codec._TIMESTAMP_RE (re.ASCII: \d is [0-9], as in Java), anchored for `find`.
_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})\z"
_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"
_AMOUNT_PARTS = r"^-?(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?\z"

# Python's Decimal (what the reference reads amounts into) holds exponents in this range
# (mpdecimal's MAX_EMAX and its smallest subnormal exponent, MIN_EMIN - (MAX_PREC - 1)).
_DECIMAL_EMAX = 999_999_999_999_999_999
_DECIMAL_ETINY = -1_999_999_999_999_999_997
_HUGE_EXPONENT = 10**30  # any exponent beyond this is as out of range as any other


def _char_class(chars: list[int]) -> str:
    """A Java regex character class of these code points, as ranges."""
    ranges: list[tuple[int, int]] = []
    for code in sorted(chars):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return (
        "["
        + "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges)
        + "]"
    )


@cache
def _controls_class() -> str:
    # Python's Unicode data, not Java's: the two differ (e.g. U+0890 is Cf in Python 3.11,
    # unassigned in Java 17). Lone surrogates cannot reach a Spark string (not_json).
    return _char_class(
        [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in ("Cc", "Cf")]
    )


@cache
def _space_class() -> str:
    """What str.strip() removes (str.isspace), so empty_field agrees."""
    return _char_class([c for c in range(sys.maxunicode + 1) if chr(c).isspace()])


# --- the plan -------------------------------------------------------------------------


def _collapse(masked: Column) -> Column:
    """Replace innermost containers by `0`, MAX_DEPTH times: a valid value of depth <=
    MAX_DEPTH becomes one token, a deeper one keeps brackets."""
    text = masked
    for _ in range(MAX_DEPTH):
        text = F.regexp_replace(text, _CONTAINER, "@")
    return text


def _without_duplicates(text: Column) -> tuple[Column, Column]:
    """(the text with every key renamed to a unique one, parsed; whether every key is a
    valid JSON string). For telling a duplicate key from a syntax error."""
    tokens = F.regexp_extract_all(text, F.lit(_TOKEN), 0)

    def is_key(token: Column) -> Column:
        return token.startswith('"') & token.endswith(":") & (F.length(token) > 1)

    renamed = F.array_join(
        F.transform(
            tokens,
            lambda t, i: F.when(
                is_key(t), F.concat(F.lit('"k'), i.cast("string"), F.lit('":'))
            ).otherwise(t),
        ),
        "",
    )
    keys_valid = F.forall(
        tokens,
        lambda t: ~is_key(t) | F.try_parse_json(F.regexp_replace(t, f"{_WS}*:\\z", "")).isNotNull(),
    )
    return F.try_parse_json(renamed), keys_valid


def _number_texts(text: Column) -> Column:
    """The payload with every number outside strings quoted, parsed: variant_get of a
    number's path then gives its exact text (NUL cannot occur in valid JSON)."""
    marked = F.regexp_replace(text, f"({_STRING})|({_NUMBER})", "$1\u0000$2\u0000")
    quoted = F.regexp_replace(
        F.regexp_replace(marked, "\u0000\u0000", ""), "\u0000([^\u0000]*)\u0000", '"$1"'
    )
    return F.try_parse_json(quoted)


def _field(v: Column, name: str, kind: str = "variant") -> Column:
    return F.try_variant_get(v, f"$.{name}", kind)


def _amount(text: Column) -> dict[str, Column]:
    """The parts of a JSON number's exact text that the amount rules look at."""
    whole = F.regexp_extract(text, _AMOUNT_PARTS, 1)
    fraction = F.regexp_extract(text, _AMOUNT_PARTS, 2)
    exp_text = F.regexp_extract(text, _AMOUNT_PARTS, 3)
    exp_digits = F.regexp_replace(exp_text, r"^[+-]?0*", "")
    exp_sign = F.when(exp_text.startswith("-"), -1).otherwise(1)
    exponent = (
        F.when(exp_text == "", F.lit(0).cast("decimal(38,0)"))
        .when(
            F.length(exp_digits) > 30,
            F.lit(Decimal(_HUGE_EXPONENT)).cast("decimal(38,0)") * exp_sign,
        )
        .otherwise(exp_text.try_cast("decimal(38,0)"))
    )
    digits = F.regexp_replace(F.concat(whole, fraction), "^0+", "")  # no leading zeros
    significant = F.regexp_replace(digits, "0+$", "")  # nor trailing ones
    zero = digits == ""
    last = exponent - F.length(fraction)  # exponent of the last digit written
    adjusted = last + F.greatest(F.length(digits), F.lit(1)) - 1  # of the first digit
    last_nonzero = last + F.length(digits) - F.length(significant)
    return {
        "float": (fraction != "") | (exp_text != ""),  # orjson reads a double
        "unrepresentable": (last < _DECIMAL_ETINY) | (adjusted > _DECIMAL_EMAX),
        "zero": zero,
        "negative": text.startswith("-"),
        "adjusted": adjusted,
        "last_nonzero": last_nonzero,
    }


def _string_checks(f: Field, value: Column) -> list[tuple[Column, str]]:
    checks: list[tuple[Column, str]] = []
    if f.max_length:
        checks.append((F.char_length(value) > f.max_length, Reason.TOO_LONG))
    if f.no_controls:
        checks.append((F.regexp_like(value, F.lit(_controls_class())), Reason.CONTROL_CHARACTER))
    return checks


def _timestamp(text: Column) -> tuple[Column, Column]:
    """(event time as a timestamp, whether it is a bad_timestamp)."""
    ts = F.try_to_timestamp(text, F.lit(_TIMESTAMP_FORMAT))
    zone = F.regexp_extract(text, r"([+-])(\d{2}):(\d{2})\z", 0)
    offset_minutes = F.when(zone == "", 0).otherwise(
        F.when(F.substring(zone, 1, 1) == "-", -1).otherwise(1)
        * (F.substring(zone, 2, 2).cast("int") * 60 + F.substring(zone, 5, 2).cast("int"))
    )
    low, high = MIN_OFFSET // timedelta(minutes=1), MAX_OFFSET // timedelta(minutes=1)
    bad = (
        ~F.regexp_like(text, F.lit(_TIMESTAMP))
        | ts.isNull()
        | (offset_minutes < low)
        | (offset_minutes > high)
        | (ts < F.lit(MIN_TIMESTAMP))
        | (F.year(ts) > 9999)  # the reference's conversion to UTC overflows
    )
    return ts, bad


def validated_columns(
    value: Column,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    now: Column | None = None,
) -> tuple[list[list[tuple[str, Column]]], list[tuple[str, Column]]]:
    """Projections for the Kafka `value` (binary) column: stages of helper columns
    (named `_sv_*`, each stage referring to the previous ones), then `error_reason` and
    the typed contract fields, which refer to them.

    Split so that the JSON is parsed once per row (Spark keeps a projection whose
    expensive aliases are used more than once apart from the next one) and each stage's
    generated code stays under the JVM's 64 KB method limit.
    """
    now = F.current_timestamp() if now is None else now
    size = F.octet_length(value)
    text = F.when(F.is_valid_utf8(value), value.cast("string"))
    helpers = [
        ("_sv_size", size),
        ("_sv_text", text),
        ("_sv_v", F.try_parse_json(text)),
        ("_sv_masked", F.regexp_replace(text, _STRING, '""')),
    ]
    t, v, masked = F.col("_sv_text"), F.col("_sv_v"), F.col("_sv_masked")
    size = F.col("_sv_size")

    stage2 = [("_sv_collapsed", _collapse(masked))]
    collapsed = F.col("_sv_collapsed")
    deep = F.regexp_like(collapsed, F.lit(r"[\[{]"))
    renamed, keys_valid = _without_duplicates(t)
    syntax_ok = v.isNotNull() | (renamed.isNotNull() & keys_valid)
    brackets = F.length(masked) - F.length(F.regexp_replace(masked, r"[\[{]", ""))
    huge_number = F.regexp_like(masked, F.lit(_MAYBE_HUGE)) & F.exists(
        F.regexp_extract_all(masked, F.lit(_NUMBER), 0),
        lambda n: F.isnan(n.cast("double")) | (F.abs(n.cast("double")) == float("inf")),
    )

    # (condition, reason) in the reference's order; the first true one is the reason.
    checks: list[tuple[Column, str]] = [
        (value.isNull() | (size == 0), Reason.EMPTY),
        (size > max_bytes, Reason.TOO_LARGE),
        (t.isNull(), Reason.NOT_UTF8),
        (~syntax_ok & deep & (brackets > _SPARK_MAX_NESTING), Reason.TOO_DEEP),
        (~syntax_ok, Reason.NOT_JSON),
        (~deep & ~F.regexp_like(collapsed, F.lit(_ONE_VALUE)), Reason.NOT_JSON),
        (huge_number, Reason.NOT_JSON),
        (deep, Reason.TOO_DEEP),
        (~F.regexp_like(t, F.lit(f"^{_WS}*+\\{{")), Reason.NOT_OBJECT),
        (v.isNull(), Reason.DUPLICATE_KEY),
    ]

    fields = TRANSACTION_FIELDS
    stage2 += [(f"_sv_type_{f.name}", F.schema_of_variant(_field(v, f.name))) for f in fields]
    stage2 += [(f"_sv_str_{f.name}", _field(v, f.name, "string")) for f in fields]
    types = {f.name: F.col(f"_sv_type_{f.name}") for f in fields}
    strings = {f.name: F.col(f"_sv_str_{f.name}") for f in fields}
    amount_field = next(f for f in fields if f.kind is Kind.DECIMAL)
    amount_type = types[amount_field.name]
    stage2.append((
        "_sv_amount",
        F.when(
            amount_type == "DOUBLE", _field(_number_texts(t), amount_field.name, "string")
        ).otherwise(strings[amount_field.name]),
    ))  # fmt: skip
    amount_text = F.col("_sv_amount")
    amount = _amount(amount_text)
    is_number = amount_type.startswith("DECIMAL") | amount_type.isin("BIGINT", "DOUBLE")
    checks.append((is_number & amount["float"] & amount["unrepresentable"], Reason.BAD_AMOUNT))
    checks.append(
        (F.exists(F.array(*[_field(v, f.name).isNull() for f in fields]), lambda m: m),
         Reason.MISSING_FIELD)
    )  # fmt: skip

    timestamps: dict[str, Column] = {}
    int_digits = min(amount_field.precision, 15) - amount_field.scale
    for f in fields:
        kind, value_text = types[f.name], strings[f.name]
        match f.kind:
            case Kind.STRING:
                checks.append((kind != "STRING", Reason.BAD_TYPE))
                checks.extend(_string_checks(f, value_text))
            case Kind.TIMESTAMP:
                checks.append((kind != "STRING", Reason.BAD_TYPE))
                ts, bad = _timestamp(value_text)
                timestamps[f.name] = ts
                checks.append((bad, Reason.BAD_TIMESTAMP))
            case Kind.DECIMAL:
                checks.append((~is_number, Reason.BAD_TYPE))
                checks.append(
                    (
                        (~amount["zero"] & (amount["adjusted"] >= int_digits))
                        | (~amount["zero"] & (amount["last_nonzero"] < -f.scale)),
                        Reason.BAD_AMOUNT,
                    )
                )
            case _:
                raise NotImplementedError(f"field {f.name}: {f.kind} has no Spark check yet")

    skew_us = max_future_skew // timedelta(microseconds=1)
    event_time = timestamps["event_time"]
    checks += [
        (~F.regexp_like(strings["transaction_id"], F.lit(_UUID)), Reason.BAD_UUID),
        (
            F.regexp_like(strings["user_id"], F.lit(f"^{_space_class()}*+\\z")),
            Reason.EMPTY_FIELD,
        ),
        (amount["zero"] | amount["negative"], Reason.BAD_AMOUNT),
        (
            ~F.array_contains(F.lit(sorted(ISO_CURRENCIES)), strings["currency"]),
            Reason.BAD_CURRENCY,
        ),
        (~F.array_contains(F.lit(sorted(ISO_COUNTRIES)), strings["country"]), Reason.BAD_COUNTRY),
        (
            F.unix_micros(event_time) > F.unix_micros(now) + F.lit(skew_us),
            Reason.FUTURE_EVENT_TIME,
        ),
    ]

    reason: Column = F.when(checks[0][0], F.lit(str(checks[0][1])))
    for condition, why in checks[1:]:
        reason = reason.when(condition, F.lit(str(why)))
    outputs: list[tuple[str, Column]] = [(REASON_COLUMN, reason)]
    for f in fields:
        match f.kind:
            case Kind.TIMESTAMP:
                typed = timestamps[f.name]
            case Kind.DECIMAL:
                typed = amount_text.cast(f"decimal({f.precision},{f.scale})")
            case _:
                typed = strings[f.name]
        outputs.append((f.name, typed))
    return [helpers, stage2], outputs


def validate(
    df: DataFrame,
    *,
    value: str = "value",
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    now: Column | None = None,
) -> DataFrame:
    """`df` plus `error_reason` (null for a valid record, else parse_transaction's reason)
    and the contract fields (null unless valid): transaction_id, user_id,
    amount decimal(15,2), currency, merchant, merchant_category, country, event_time.

    Built-in expressions only (no Python UDF), so it runs in real-time mode.
    """
    stages, outputs = validated_columns(
        F.col(value), max_bytes=max_bytes, max_future_skew=max_future_skew, now=now
    )
    staged = df
    for stage in stages:
        staged = staged.select("*", *[c.alias(n) for n, c in stage])
    checked = staged.select("*", outputs[0][1].alias(outputs[0][0]))
    ok = F.col(REASON_COLUMN).isNull()
    return checked.select(
        *df.columns, REASON_COLUMN, *[F.when(ok, c).alias(n) for n, c in outputs[1:]]
    )
