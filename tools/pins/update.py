"""Regenerates pins.bzl: the exact jars (with sha256) of the Kafka broker, of Spark's
Kafka connector and of Flink's Kafka SQL connector (the peers benchmark's Flink job), and
the Prometheus and Alertmanager Debian packages.

Why a script and not a resolver at build time: Bazel must fetch a fixed, hashed list so
builds are reproducible and work from a repository cache with no resolver at all. Maven
(on the host: `apt-get install maven`) does the dependency resolution once, here.

Usage (from the repo root, on a machine that reaches Maven Central and Debian):
    python3 tools/pins/update.py [--kafka 4.1.1] [--spark-connector 4.2.0] \
        [--flink-connector 5.0.0-2.2]
"""

from __future__ import annotations

import argparse
import hashlib
import pathlib
import re
import subprocess
import tempfile
import urllib.request
from dataclasses import dataclass

PINS = pathlib.Path(__file__).with_name("pins.bzl")
DEBIAN = "http://deb.debian.org/debian"
MAVEN = "https://repo1.maven.org/maven2"

# Jars of the connector that pyspark's own jars/ folder already ships are left out, so
# the classpath has one copy of Spark, Scala, Hadoop and the compression codecs.
CONNECTOR_KEEP = re.compile(
    r"^org\.apache\.spark:spark-(sql-kafka|token-provider-kafka)|"
    r"^org\.apache\.kafka:kafka-clients$|^org\.apache\.commons:commons-pool2$"
)


@dataclass(frozen=True)
class Artifact:
    group: str
    artifact: str
    version: str

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    def local_path(self, m2: pathlib.Path) -> pathlib.Path:
        name = f"{self.artifact}-{self.version}.jar"
        return m2 / self.group.replace(".", "/") / self.artifact / self.version / name


def resolve(roots: list[str], m2: pathlib.Path) -> list[Artifact]:
    """Runtime closure of `roots` as Maven resolves it (nearest-wins mediation)."""
    deps = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId>"
        "<version>{}</version></dependency>".format(*root.split(":"))
        for root in roots
    )
    pom = (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>pins</groupId><artifactId>pins</artifactId><version>0</version>"
        f"<packaging>pom</packaging><dependencies>{deps}</dependencies></project>"
    )
    with tempfile.TemporaryDirectory() as tmp:
        pathlib.Path(tmp, "pom.xml").write_text(pom)
        out = pathlib.Path(tmp, "deps.txt")
        subprocess.run(
            [
                "mvn",
                "-q",
                "-B",
                f"-Dmaven.repo.local={m2}",
                "dependency:list",
                "-DincludeScope=runtime",
                "-Dstyle.color=never",
                f"-DoutputFile={out}",
            ],
            cwd=tmp,
            check=True,
        )
        listing = out.read_text()
    found = re.findall(r"^\s+([^:\s]+):([^:\s]+):jar:([^:\s]+):(?:compile|runtime)", listing, re.M)
    return sorted({Artifact(g, a, v) for g, a, v in found}, key=lambda a: a.coordinate)


def sha256_file(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def jar_pins(artifacts: list[Artifact], m2: pathlib.Path) -> dict[str, str]:
    return {a.coordinate: sha256_file(a.local_path(m2)) for a in artifacts}


def shaded_jar(coordinate: str) -> dict[str, str]:
    """One self-contained (shaded) jar and its sha256: Flink's SQL connectors bundle their
    Kafka client, and Flink itself comes with PyFlink, so there is nothing to resolve."""
    group, artifact, version = coordinate.split(":")
    url = f"{MAVEN}/{group.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}.jar"
    with urllib.request.urlopen(url, timeout=300) as response:
        return {coordinate: hashlib.sha256(response.read()).hexdigest()}


def debian_package(suite: str, package: str) -> tuple[str, str, str]:
    """(version, url, sha256) of `package` (amd64) in `suite`, from the signed index."""
    url = f"{DEBIAN}/dists/{suite}/main/binary-amd64/Packages.xz"
    import lzma

    with urllib.request.urlopen(url, timeout=120) as response:
        index = lzma.decompress(response.read()).decode()
    for stanza in index.split("\n\n"):
        if re.search(rf"^Package: {re.escape(package)}$", stanza, re.M):
            field = dict(re.findall(r"^(\w+): (.*)$", stanza, re.M))
            return field["Version"], f"{DEBIAN}/{field['Filename']}", field["SHA256"]
    raise SystemExit(f"{package} not found in {url}")


def deb_block(name: str, pin: tuple[str, str, str]) -> str:
    version, url, sha = pin
    return (
        f'\n{name} = {{\n    "version": "{version}",\n    "urls": ["{url}"],\n'
        f'    "sha256": "{sha}",\n}}\n'
    )


def render(
    kafka: str,
    kafka_jars: dict,
    connector: str,
    connector_jars: dict,
    flink: str,
    flink_jars: dict,
    prom,
    alertmanager,
) -> str:
    def block(name: str, version: str, jars: dict[str, str]) -> str:
        body = "".join(f'        "{c}": "{h}",\n' for c, h in sorted(jars.items()))
        return f'{name} = {{\n    "version": "{version}",\n    "jars": {{\n{body}    }},\n}}\n'

    return (
        '"""Pinned external components. Generated by tools/pins/update.py: do not edit."""\n\n'
        + block("KAFKA_BROKER_JARS", f"kafka_2.13 {kafka}", kafka_jars)
        + "\n"
        + block(
            "SPARK_KAFKA_CONNECTOR_JARS", f"spark-sql-kafka-0-10_2.13 {connector}", connector_jars
        )
        + "\n"
        + block("FLINK_KAFKA_CONNECTOR_JARS", f"flink-sql-connector-kafka {flink}", flink_jars)
        + deb_block("PROMETHEUS_DEB", prom)
        + deb_block("ALERTMANAGER_DEB", alertmanager)
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kafka", default="4.1.1", help="Apache Kafka broker version")
    parser.add_argument(
        "--log4j", default="2.24.3", help="log4j version for the broker's slf4j binding"
    )
    parser.add_argument(
        "--spark-connector", default="4.2.0", help="spark-sql-kafka-0-10_2.13 version"
    )
    parser.add_argument(
        "--flink-connector",
        default="5.0.0-2.2",
        help="flink-sql-connector-kafka version (<connector>-<Flink minor>; see peers/README)",
    )
    parser.add_argument(
        "--prometheus-suite", default="bookworm", help="Debian suite for Prometheus"
    )
    parser.add_argument("--m2", type=pathlib.Path, default=pathlib.Path.home() / ".m2/repository")
    args = parser.parse_args()

    broker = resolve(
        [
            f"org.apache.kafka:kafka_2.13:{args.kafka}",
            f"org.apache.logging.log4j:log4j-slf4j-impl:{args.log4j}",
        ],
        args.m2,
    )
    connector = [
        a
        for a in resolve(
            [f"org.apache.spark:spark-sql-kafka-0-10_2.13:{args.spark_connector}"], args.m2
        )
        if CONNECTOR_KEEP.search(f"{a.group}:{a.artifact}")
    ]
    flink = shaded_jar(f"org.apache.flink:flink-sql-connector-kafka:{args.flink_connector}")
    prom = debian_package(args.prometheus_suite, "prometheus")
    alertmanager = debian_package(args.prometheus_suite, "prometheus-alertmanager")
    PINS.write_text(
        render(
            args.kafka,
            jar_pins(broker, args.m2),
            args.spark_connector,
            jar_pins(connector, args.m2),
            args.flink_connector,
            flink,
            prom,
            alertmanager,
        )
    )
    print(
        f"wrote {PINS}: {len(broker)} broker jars, {len(connector)} connector jars, "
        f"{len(flink)} Flink connector jar"
    )
    print(f"prometheus {prom[0]}, alertmanager {alertmanager[0]}")


if __name__ == "__main__":
    main()
