#!/usr/bin/python3
"""Checks Ember's Home Assistant discovery the way Home Assistant reads it.

Input: the messages a subscriber received from a real broker (JSON lines: topic, payload,
retain), as telmqtt_broker_test writes them. For every discovered entity (single-component or
device discovery, the latter expanded with its shared root options):

- the options are ones the platform accepts, with the required ones present;
- device class, unit and state class form a combination of Home Assistant's sensor/number tables
  (encoded below from its documentation, "Sensor units and state-class compatibility");
- every value template is rendered with jinja2 in a sandbox like Home Assistant's (value,
  value_json, its forgiving `round`/`float`/`int` filters, undefined names are errors) against
  every real payload on the state topic, including the ones with nulls, and the result is handled
  as Home Assistant's MQTT platform would: a numeric sensor needs a number or `None` (unknown), an
  enum one of its options, a select one of its options, a number a value within min..max;
- json_attributes templates render a JSON object; the number's command template renders what the
  power_cap/set parser accepts;
- energy (total_increasing) never decreases in the order the subscriber saw it.

With --dashboard FILE the Lovelace dashboard's entity ids must all be discovered entities.
Exit 0 when everything holds; otherwise each problem is printed and the exit status is 1.
"""
import argparse
import json
import math
import re
import sys

try:
    import jinja2
    import jinja2.sandbox
except ImportError:  # scripts/setup installs python3-jinja2
    print("hass_check: python3-jinja2 is missing (run scripts/setup)", file=sys.stderr)
    sys.exit(1)

# ---- Home Assistant's rules (MQTT discovery docs; sensor const tables) ----

SENSOR_UNITS = {  # device class -> (units, state classes); None in units = no unit
    "power": ({"GW", "MW", "TW", "W", "kW", "mW"}, {"measurement"}),
    "energy": ({"GJ", "GWh", "Gcal", "J", "MJ", "MWh", "Mcal", "TWh", "Wh", "cal", "kJ", "kWh",
                "kcal", "mWh"}, {"total", "total_increasing"}),
    "temperature": ({"K", "°C", "°F"}, {"measurement"}),
    "frequency": ({"GHz", "Hz", "MHz", "kHz", "mHz"}, {"measurement"}),
    "duration": ({"d", "h", "min", "ms", "s", "μs"},
                 {"measurement", "total", "total_increasing"}),
    "data_size": (None, {"measurement", "total", "total_increasing"}),
    "enum": (set(), set()),
}
NUMBER_UNITS = {"power": {"GW", "MW", "TW", "W", "kW", "mW"}}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
NON_NUMERIC_CLASSES = {None, "enum", "date", "timestamp"}

COMMON = {"name", "unique_id", "qos", "availability", "availability_topic", "availability_mode",
          "availability_template", "payload_available", "payload_not_available", "device",
          "origin", "icon", "entity_category", "enabled_by_default", "encoding",
          "json_attributes_topic", "json_attributes_template", "default_entity_id",
          "entity_picture"}
ALLOWED = {
    "sensor": COMMON | {"state_topic", "value_template", "unit_of_measurement", "device_class",
                        "state_class", "expire_after", "force_update", "options",
                        "suggested_display_precision", "last_reset_value_template"},
    "select": COMMON | {"state_topic", "value_template", "command_topic", "command_template",
                        "options", "optimistic", "retain"},
    "number": COMMON | {"state_topic", "value_template", "command_topic", "command_template",
                        "min", "max", "step", "mode", "unit_of_measurement", "device_class",
                        "payload_reset", "optimistic", "retain"},
}
REQUIRED = {"sensor": {"state_topic"}, "select": {"command_topic", "options"},
            "number": {"command_topic"}}
DEVICE_SHARED = {"availability", "availability_topic", "availability_mode",
                 "availability_template", "payload_available", "payload_not_available",
                 "state_topic", "command_topic", "qos", "encoding"}
CAP_RE = re.compile(r"^[0-9]+(\.[0-9]+)?$")  # what power_cap/set accepts besides "off"

problems = []


def fail(msg):
    problems.append(msg)


# ---- templates the way Home Assistant renders them ----

def forgiving_round(value, precision=0, method="common", default=None):
    try:
        value = round(float(value), precision)
        return int(value) if precision == 0 else value
    except (ValueError, TypeError):
        if default is not None:
            return default
        raise


def forgiving_float(value, default=None):
    try:
        return float(value)
    except (ValueError, TypeError):
        if default is not None:
            return default
        raise


def forgiving_int(value, default=None, base=10):
    try:
        return int(float(value))
    except (ValueError, TypeError):
        if default is not None:
            return default
        raise


ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
ENV.filters["round"] = forgiving_round
ENV.filters["float"] = forgiving_float
ENV.filters["int"] = forgiving_int


def render(template, payload, **extra):
    """Home Assistant's async_render_with_possible_json_value: value, value_json, stripped."""
    variables = {"value": payload}
    try:
        variables["value_json"] = json.loads(payload)
    except ValueError:
        pass
    variables.update(extra)
    return str(ENV.from_string(template).render(**variables)).strip()


def is_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def slugify(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


# ---- discovery ----

def load(path):
    msgs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                msgs.append(json.loads(line))
    return msgs


def entities_from(msgs, prefix):
    """The effective entity configs of the retained discovery state at the end: topic -> config
    for single components, expanded components for device messages."""
    last = {}
    for m in msgs:
        if m["topic"].startswith(prefix + "/") and m["topic"].endswith("/config"):
            last[m["topic"]] = m["payload"]
    out = []
    for topic, payload in sorted(last.items()):
        if payload == "":
            continue  # removed
        try:
            cfg = json.loads(payload)
        except ValueError:
            fail(f"{topic}: not JSON")
            continue
        if not isinstance(cfg, dict):
            fail(f"{topic}: not a JSON object")
            continue
        if cfg == {"migrate_discovery": True}:
            continue
        parts = topic.split("/")
        component = parts[1]
        if component == "device":
            for key in ("device", "origin", "components"):
                if key not in cfg:
                    fail(f"{topic}: device discovery without {key}")
            for key in cfg:
                if key not in DEVICE_SHARED | {"device", "origin", "components"}:
                    fail(f"{topic}: {key} is not a shared device-discovery option")
            for cid, comp in cfg.get("components", {}).items():
                if not re.fullmatch(r"[A-Za-z0-9_-]+", cid):
                    fail(f"{topic}: component id {cid!r}")
                comp = dict(comp)
                platform = comp.pop("platform", None)
                if platform is None:
                    fail(f"{topic}: component {cid} without platform")
                    continue
                if "device" in comp or "origin" in comp:
                    fail(f"{topic}: component {cid} overrides device/origin")
                eff = {k: v for k, v in cfg.items() if k in DEVICE_SHARED}
                if "availability" in comp or "availability_topic" in comp:
                    for k in ("availability", "availability_topic", "availability_mode"):
                        eff.pop(k, None)
                eff.update(comp)
                eff["device"] = cfg.get("device")
                eff["origin"] = cfg.get("origin")
                out.append((f"{topic}#{cid}", platform, eff))
        else:
            out.append((topic, component, cfg))
    return out


def check_urls(where, cfg):
    dev = cfg.get("device") or {}
    url = dev.get("configuration_url")
    if url is not None and not re.match(r"^(https?|homeassistant)://\S+$", url):
        fail(f"{where}: configuration_url {url!r}")
    url = (cfg.get("origin") or {}).get("support_url")
    if url is not None and not re.match(r"^https?://\S+$", url):
        fail(f"{where}: support_url {url!r}")


def check_config(where, platform, cfg):
    if platform not in ALLOWED:
        fail(f"{where}: platform {platform} not checked by this script")
        return
    for key in cfg:
        if key not in ALLOWED[platform]:
            fail(f"{where}: {key} is not a {platform} discovery option")
    for key in REQUIRED[platform] | {"unique_id", "name"}:
        if key not in cfg:
            fail(f"{where}: {key} missing")
    if "availability" in cfg and "availability_topic" in cfg:
        fail(f"{where}: availability and availability_topic together")
    for a in cfg.get("availability", []):
        if "topic" not in a:
            fail(f"{where}: availability entry without topic")
    if cfg.get("availability_mode", "latest") not in ("all", "any", "latest"):
        fail(f"{where}: availability_mode")
    dev = cfg.get("device") or {}
    if not dev.get("identifiers") and not dev.get("connections"):
        fail(f"{where}: device without identifiers")
    if "name" not in (cfg.get("origin") or {}):
        fail(f"{where}: origin without name")
    check_urls(where, cfg)
    dc, unit, sc = cfg.get("device_class"), cfg.get("unit_of_measurement"), cfg.get("state_class")
    if platform == "sensor":
        if sc is not None and sc not in STATE_CLASSES:
            fail(f"{where}: state_class {sc}")
        if dc is not None:
            if dc not in SENSOR_UNITS:
                fail(f"{where}: device_class {dc} not in this script's table")
            else:
                units, classes = SENSOR_UNITS[dc]
                if units is not None and (unit is not None or units) and unit not in units:
                    fail(f"{where}: unit {unit!r} not valid for device class {dc}")
                if sc is not None and sc not in classes:
                    fail(f"{where}: state class {sc} not valid for device class {dc}")
        if "options" in cfg:
            if dc != "enum" or unit is not None or sc is not None or not cfg["options"]:
                fail(f"{where}: options need device_class enum, no unit, no state class")
        elif dc == "enum":
            fail(f"{where}: enum without options")
        if "expire_after" in cfg and not (isinstance(cfg["expire_after"], int)
                                          and cfg["expire_after"] > 0):
            fail(f"{where}: expire_after {cfg['expire_after']!r}")
        p = cfg.get("suggested_display_precision")
        if p is not None and not (isinstance(p, int) and p >= 0):
            fail(f"{where}: suggested_display_precision {p!r}")
    if platform == "number":
        if dc is not None and (dc not in NUMBER_UNITS or unit not in NUMBER_UNITS[dc]):
            fail(f"{where}: number device class {dc} with unit {unit!r}")
        lo, hi, step = cfg.get("min", 1), cfg.get("max", 100), cfg.get("step", 1)
        if not lo < hi or step < 0.001:  # Home Assistant: "'max' must be > 'min'"
            fail(f"{where}: min {lo} max {hi} step {step}")
        if cfg.get("unique_id", "").endswith("_power_cap") and (
                lo != 0 or not float(step).is_integer() or "command_template" not in cfg):
            # 0 = no cap (issue 20): reachable from the entity, and every value HA can set
            # (min + k * step) a whole number of watts
            fail(f"{where}: the cap cannot be cleared or set in whole watts (min {lo}, step {step})")
        if cfg.get("mode", "auto") not in ("auto", "box", "slider"):
            fail(f"{where}: mode")
    if platform == "select":
        opts = cfg.get("options")
        if not isinstance(opts, list) or not opts or not all(isinstance(o, str) for o in opts):
            fail(f"{where}: options")


def numeric_expected(cfg):
    return (cfg.get("device_class") not in NON_NUMERIC_CLASSES or "unit_of_measurement" in cfg
            or "state_class" in cfg or "suggested_display_precision" in cfg)


def check_states(where, platform, cfg, msgs):
    """Renders the templates against every message on the entity's topics."""
    topic = cfg.get("state_topic")
    # An empty payload (a retained message cleared) is ignored by sensors but is an invalid
    # option or number for the controls.
    seen = [m for m in msgs
            if m["topic"] == topic and (m["payload"] != "" or platform != "sensor")]
    if not seen:
        fail(f"{where}: nothing received on {topic}")
    tpl = cfg.get("value_template", "{{ value }}")
    last = None
    for m in seen:
        try:
            out = render(tpl, m["payload"])
        except Exception as e:  # a template error is logged by HA every time
            fail(f"{where}: value_template fails on {m['payload']!r}: {e}")
            continue
        if platform == "sensor":
            if numeric_expected(cfg):
                if out == "":
                    fail(f"{where}: empty result for {m['payload']!r} (HA ignores it)")
                elif out != "None" and not is_number(out):
                    fail(f"{where}: {out!r} is not a number (payload {m['payload']!r})")
                elif out != "None" and cfg.get("state_class") == "total_increasing":
                    if last is not None and float(out) < last:
                        fail(f"{where}: total went down from {last} to {out}")
                    last = float(out)
            elif cfg.get("device_class") == "enum":
                if out not in cfg["options"]:
                    fail(f"{where}: {out!r} is not one of {cfg['options']}")
            elif out == "":
                fail(f"{where}: empty text state for {m['payload']!r}")
        elif platform == "select":
            if out.lower() != "none" and out not in cfg["options"]:
                fail(f"{where}: invalid option {out!r}")
        elif platform == "number":
            if cfg.get("payload_reset") == out:
                continue
            if not is_number(out):
                fail(f"{where}: {out!r} is not a number")
            elif not cfg.get("min", 1) <= float(out) <= cfg.get("max", 100):
                fail(f"{where}: {out} outside min..max")
    if "json_attributes_topic" in cfg:
        attrs = [m for m in msgs if m["topic"] == cfg["json_attributes_topic"] and m["payload"]]
        if not attrs:
            fail(f"{where}: nothing received on {cfg['json_attributes_topic']}")
        for m in attrs:
            try:
                out = render(cfg.get("json_attributes_template", "{{ value }}"), m["payload"])
                if not isinstance(json.loads(out), dict):
                    raise ValueError("not an object")
            except Exception as e:
                fail(f"{where}: json attributes from {m['payload']!r}: {e}")
    if platform == "number" and "command_template" in cfg:
        step = cfg.get("step", 1)
        values = [cfg.get("min", 1), cfg.get("max", 100), 30, 30.5]
        values += [cfg.get("min", 1) + step]
        for v in values:
            v = int(v) if float(v).is_integer() else v  # what HA hands the template
            out = render(cfg["command_template"], str(v), value=v)
            if v == 0:
                if out != "off":
                    fail(f"{where}: command for 0 is {out!r}, not off")
            elif not CAP_RE.match(out):
                fail(f"{where}: command for {v} is {out!r}, which power_cap/set refuses")
    return len(seen)


def check_dashboard(path, entities):
    import yaml
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    known = set()
    for where, platform, cfg in entities:
        dev = (cfg.get("device") or {}).get("name", "")
        known.add(f"{platform}.{slugify(dev + ' ' + cfg['name'])}")
    used = set()

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "entity" and isinstance(v, str):
                    used.add(v)
                elif k == "entities" and isinstance(v, list):
                    for e in v:
                        if isinstance(e, str):
                            used.add(e)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    if not used:
        fail(f"{path}: no entities")
    for e in sorted(used - known):
        fail(f"{path}: {e} is not a discovered entity (known: {sorted(known)})")
    for need in ("power", "energy", "joules_per_token", "temperature", "cpu_frequency",
                 "governor_policy", "power_cap"):
        if not any(e.endswith("_" + need) for e in used):
            fail(f"{path}: no {need} entity")
    return len(used)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("messages")
    ap.add_argument("--prefix", default="homeassistant")
    ap.add_argument("--entities", type=int, default=0, help="expected number of entities")
    ap.add_argument("--dashboard")
    args = ap.parse_args()
    msgs = load(args.messages)
    entities = entities_from(msgs, args.prefix)
    if args.entities and len(entities) != args.entities:
        fail(f"{len(entities)} entities discovered, expected {args.entities}")
    uids = [cfg.get("unique_id") for _, _, cfg in entities]
    if len(set(uids)) != len(uids):
        fail("unique_id used twice")
    rendered = 0
    for where, platform, cfg in entities:
        check_config(where, platform, cfg)
        rendered += check_states(where, platform, cfg, msgs)
    nulls = [m for m in msgs if m["topic"].endswith("/state") and "null" in m["payload"]]
    if not nulls:
        fail("no state payload with nulls was checked")
    if args.dashboard:
        check_dashboard(args.dashboard, entities)
    for p in problems:
        print("hass_check: " + p)
    print(f"hass_check: {len(entities)} entities, {rendered} state messages rendered, "
          f"{len(nulls)} with nulls, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
