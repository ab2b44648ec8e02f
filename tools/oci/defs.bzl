"""OCI image rules: layers, images, load and push, without rules_oci.

Why: rules_oci is not packaged in Debian and neither the Bazel registry nor GitHub is
reachable from our build machines, and no base image can be pulled. These rules build
everything from pinned inputs with two small Python tools (layer.py, image.py) and keep
rules_oci's vocabulary, so a reader who knows it is at home:

| rules_oci                 | here                                                  |
| ------------------------- | ----------------------------------------------------- |
| `pkg_tar` / `tar` layers  | `oci_layer` (files, Debian packages, dirs, symlinks)  |
| `oci_image(base, tars)`   | `oci_image(base, layers)`: an OCI image layout        |
| `oci_load(repo_tags)`     | `oci_load`: `bazel run` loads into docker or podman;  |
|                           | the tarball is its `tarball` output group             |
| `oci_push(repository)`    | `oci_push`: `bazel run ... -- --repository R --tag T` |
| (rules_python py layers)  | `py_app_layer`: a py_binary's third-party or own code |
"""

load("@rules_python//python:defs.bzl", "py_binary")
load("//tools/pytest:defs.bzl", "pytest_test")

LayerInfo = provider(
    doc = "One image layer: a reproducible .tar.gz and its descriptor (digest, diff_id).",
    fields = {"tarball": "File", "descriptor": "File (JSON)"},
)

ImageInfo = provider(
    doc = "An image: its OCI layout directory.",
    fields = {"layout": "File (directory)"},
)

_LAYER_TOOL = attr.label(default = "//tools/oci:layer", executable = True, cfg = "exec")
_IMAGE_TOOL = attr.label(default = "//tools/oci:image", executable = True, cfg = "exec")

def _write_layer(ctx, spec, inputs):
    tarball = ctx.actions.declare_file(ctx.label.name + ".tar.gz")
    descriptor = ctx.actions.declare_file(ctx.label.name + ".json")
    spec_file = ctx.actions.declare_file(ctx.label.name + ".spec.json")
    ctx.actions.write(spec_file, json.encode_indent(spec))
    ctx.actions.run(
        executable = ctx.executable._layer_tool,
        arguments = [spec_file.path, tarball.path, descriptor.path],
        inputs = depset([spec_file], transitive = [inputs]),
        outputs = [tarball, descriptor],
        mnemonic = "OciLayer",
        progress_message = "Building image layer %{label}",
    )
    return [
        DefaultInfo(files = depset([tarball])),
        LayerInfo(tarball = tarball, descriptor = descriptor),
        OutputGroupInfo(spec = depset([spec_file]), inputs = inputs),
    ]

def _parse_directory(dest, value):
    parts = (value or "0755").split(":")
    entry = {"kind": "dir", "dest": dest, "mode": parts[0]}
    if len(parts) == 3:
        entry["uid"] = int(parts[1])
        entry["gid"] = int(parts[2])
    return entry

def _oci_layer_impl(ctx):
    entries = [{"kind": "deb", "src": deb.path} for deb in ctx.files.debs]
    inputs = list(ctx.files.debs)
    for target, dest in ctx.attr.files.items():
        files = target.files.to_list()
        for f in files:
            path = dest if len(files) == 1 and not dest.endswith("/") else dest.rstrip("/") + "/" + f.basename
            entries.append({"kind": "file", "src": f.path, "dest": path})
            inputs.append(f)
    for dest, value in ctx.attr.directories.items():
        entries.append(_parse_directory(dest, value))
    for dest, target in ctx.attr.symlinks.items():
        entries.append({"kind": "symlink", "dest": dest, "target": target})
    for dest, text in ctx.attr.contents.items():
        entries.append({"kind": "content", "dest": dest, "text": text})
    spec = {
        "entries": entries,
        "ca_bundle": ctx.attr.ca_bundle,
        "dpkg_status": ctx.attr.dpkg_status,
        "created_by": ctx.attr.created_by or "oci_layer " + str(ctx.label),
    }
    return _write_layer(ctx, spec, depset(inputs))

oci_layer = rule(
    implementation = _oci_layer_impl,
    doc = "A reproducible layer from Debian packages, files, directories, symlinks, text.",
    attrs = {
        "debs": attr.label_list(allow_files = [".deb"], doc = "packages unpacked in order"),
        "files": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "file -> path in the image (a path ending in / or a multi-file label: a folder)",
        ),
        "directories": attr.string_dict(doc = 'path -> "mode" or "mode:uid:gid"'),
        "symlinks": attr.string_dict(doc = "path -> target"),
        "contents": attr.string_dict(doc = "path -> text of a 0644 file"),
        "ca_bundle": attr.bool(doc = "write /etc/ssl/certs/ca-certificates.crt"),
        "dpkg_status": attr.bool(doc = "record packages in /var/lib/dpkg/status.d"),
        "created_by": attr.string(doc = "the image history line for this layer"),
        "_layer_tool": _LAYER_TOOL,
    },
)

def _repo_of(f):
    """The runfiles repository directory of an external file: `../<repo>/...`."""
    return f.short_path.split("/")[1]

def _py_app_layer_impl(ctx):
    binary = ctx.attr.binary[DefaultInfo]
    launcher = binary.files_to_run.executable
    prefix = ctx.attr.prefix.rstrip("/")
    entries = []
    inputs = []
    for f in binary.default_runfiles.files.to_list():
        if f == launcher:
            continue
        external = f.short_path.startswith("../")
        if not external:
            if ctx.attr.part == "app":
                entries.append({"kind": "file", "src": f.path, "dest": prefix + "/" + f.short_path})
                inputs.append(f)
            continue
        if ctx.attr.part != "third_party":
            continue
        repo = _repo_of(f)
        rest = f.short_path[len("../" + repo + "/"):]
        if "site-packages/" in rest:
            dest = prefix + "/site-packages/" + rest.split("site-packages/", 1)[1]
        elif any([marker in repo for marker in ctx.attr.skip_repos]):
            continue  # the build's interpreter and rules_python: the image has its own
        else:
            # Other data (e.g. pinned jars) under its repository's apparent name.
            dest = prefix + "/external/" + repo.split("~")[-1].split("+")[-1] + "/" + rest
        entries.append({"kind": "file", "src": f.path, "dest": dest})
        inputs.append(f)
    spec = {
        "entries": entries,
        "created_by": "py_app_layer {} of {}".format(ctx.attr.part, ctx.attr.binary.label),
    }
    return _write_layer(ctx, spec, depset(inputs))

py_app_layer = rule(
    implementation = _py_app_layer_impl,
    doc = """One part of a py_binary as a layer under `prefix`: `third_party` (pip packages
    into prefix/site-packages, other external data into prefix/external/<repo>) or `app`
    (this repository's files at their workspace paths). Two layers, so an app change
    rebuilds only the small one.""",
    attrs = {
        "binary": attr.label(mandatory = True, executable = True, cfg = "target"),
        "part": attr.string(mandatory = True, values = ["app", "third_party"]),
        "prefix": attr.string(default = "/opt/app"),
        "skip_repos": attr.string_list(
            default = ["python3_11", "python_3_11", "rules_python~", "rules_python+", "bazel_tools"],
            doc = "external repositories (substrings) left out of the image",
        ),
        "_layer_tool": _LAYER_TOOL,
    },
)

def _oci_image_impl(ctx):
    layout = ctx.actions.declare_directory(ctx.label.name)
    settings = {
        "entrypoint": ctx.attr.entrypoint or None,
        "cmd": ctx.attr.cmd or None,
        "env": ctx.attr.env,
        "user": ctx.attr.user or None,
        "workdir": ctx.attr.workdir or None,
        "labels": ctx.attr.labels,
        "exposed_ports": ctx.attr.exposed_ports,
        "stop_signal": ctx.attr.stop_signal or None,
    }
    config = ctx.actions.declare_file(ctx.label.name + ".config.json")
    ctx.actions.write(config, json.encode_indent(settings))
    args = ctx.actions.args()
    args.add("layout")
    args.add(layout.path)
    args.add("--config", config)
    inputs = [config]
    if ctx.attr.base:
        base = ctx.attr.base[ImageInfo].layout
        args.add("--base", base.path)
        inputs.append(base)
    for layer in ctx.attr.layers:
        info = layer[LayerInfo]
        args.add_all("--layer", [info.tarball, info.descriptor])
        inputs.extend([info.tarball, info.descriptor])
    if ctx.attr.stamp:
        args.add("--stamp-info", ctx.info_file)
        inputs.append(ctx.info_file)
    if ctx.attr.ref_name:
        args.add("--ref-name", ctx.attr.ref_name)
    ctx.actions.run(
        executable = ctx.executable._image_tool,
        arguments = [args],
        inputs = inputs,
        outputs = [layout],
        mnemonic = "OciImage",
        progress_message = "Assembling image %{label}",
    )
    return [
        DefaultInfo(files = depset([layout])),
        ImageInfo(layout = layout),
        # For oci_image_tests: what the image was assembled from.
        OutputGroupInfo(
            config = depset([config]),
            base = depset([ctx.attr.base[ImageInfo].layout] if ctx.attr.base else []),
        ),
    ]

oci_image = rule(
    implementation = _oci_image_impl,
    doc = "An OCI image layout: the base's layers, then `layers`, with this configuration.",
    attrs = {
        "base": attr.label(providers = [ImageInfo]),
        "layers": attr.label_list(providers = [LayerInfo]),
        "entrypoint": attr.string_list(),
        "cmd": attr.string_list(),
        "env": attr.string_dict(doc = "added to (and overriding) the base's environment"),
        "user": attr.string(),
        "workdir": attr.string(),
        "labels": attr.string_dict(doc = "values may use {STABLE_GIT_COMMIT} etc. (with --stamp)"),
        "exposed_ports": attr.string_list(),
        "stop_signal": attr.string(),
        "ref_name": attr.string(doc = "name:tag annotation in index.json"),
        "stamp": attr.bool(doc = "read Bazel's workspace status for label values"),
        "_image_tool": _IMAGE_TOOL,
    },
)

_LOAD_SCRIPT = """#!/usr/bin/env bash
# Loads {label} into docker or podman (FRAUD_CONTAINER_ENGINE picks one).
set -euo pipefail
tarball="${{RUNFILES_DIR:-$0.runfiles}}/_main/{tarball}"
[[ -f "$tarball" ]] || tarball="{tarball}"
engine="${{FRAUD_CONTAINER_ENGINE:-}}"
if [[ -z "$engine" ]]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null; then engine=podman
  else
    echo "load: neither a running docker nor podman was found; install one," \\
      "or build the tarball with --output_groups=+tarball and load it yourself" >&2
    exit 1
  fi
fi
echo "load: loading {tags} into $engine ($(du -h "$tarball" | cut -f1))" >&2
"$engine" load -i "$tarball"
"""

def _oci_load_impl(ctx):
    layout = ctx.attr.image[ImageInfo].layout
    tarball = ctx.actions.declare_file(ctx.label.name + "/tarball.tar")
    args = ctx.actions.args()
    args.add("tarball")
    args.add(tarball.path)
    args.add("--layout", layout.path)
    args.add_all(ctx.attr.repo_tags, before_each = "--repo-tag")
    ctx.actions.run(
        executable = ctx.executable._image_tool,
        arguments = [args],
        inputs = [layout],
        outputs = [tarball],
        mnemonic = "OciTarball",
        progress_message = "Packing image tarball %{label}",
    )
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(
        script,
        _LOAD_SCRIPT.format(
            label = ctx.attr.image.label,
            tarball = tarball.short_path,
            tags = " ".join(ctx.attr.repo_tags),
        ),
        is_executable = True,
    )
    return [
        DefaultInfo(
            executable = script,
            files = depset([script]),
            runfiles = ctx.runfiles(files = [tarball]),
        ),
        OutputGroupInfo(tarball = depset([tarball])),
    ]

oci_load = rule(
    implementation = _oci_load_impl,
    doc = "`bazel run` loads the image into docker or podman; output group `tarball`.",
    attrs = {
        "image": attr.label(mandatory = True, providers = [ImageInfo]),
        "repo_tags": attr.string_list(mandatory = True),
        "_image_tool": _IMAGE_TOOL,
    },
    executable = True,
)

# Image labels (OCI annotations keys); values in braces come from tools/workspace_status.sh
# in `--stamp` builds and read `unstamped` otherwise.
VERSION = "0.1.0"  # keep in step with MODULE.bazel

APP_USER = "65532:65532"  # `app` in //tools/oci/base:os; distroless's nonroot id

# `bazel build --stamp`: labels carry the revision (oci_image's `stamp`).
STAMP = select({
    "//tools/oci:stamped": True,
    "//conditions:default": False,
})

def image_labels(title, description, version = VERSION):
    """The OCI labels every image carries; revision and source are filled in by --stamp."""
    return {
        "org.opencontainers.image.title": title,
        "org.opencontainers.image.description": description,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": "{STABLE_GIT_COMMIT}",
        "org.opencontainers.image.source": "{STABLE_GIT_REMOTE}",
    }

def py_image(
        name,
        binary,
        module,
        description,
        base = "//tools/oci/base:python",
        env = {},
        extra_layers = [],
        **kwargs):
    """A Python service image: `base`, then the binary's third-party packages, then its own
    code, run as `python3.11 -m module` by the non-root `app` user.

    Args:
        name: the image target; `<name>_third_party` and `<name>_app` are its layers.
        binary: the service's py_binary.
        module: the entry module, e.g. services.producer.producer.
        description: one line for the image's description label.
        base: an oci_image with Python 3.11 at /usr/bin/python3.11.
        env: extra environment (overrides the defaults here).
        extra_layers: layers between the base and the Python ones (packages, folders).
        **kwargs: passed to oci_image (exposed_ports, cmd, ...).
    """
    kwargs.setdefault("visibility", ["//visibility:public"])  # push_all, compose, tests
    py_app_layer(name = name + "_third_party", binary = binary, part = "third_party")
    py_app_layer(name = name + "_app", binary = binary, part = "app")
    oci_image(
        name = name,
        base = base,
        layers = extra_layers + [name + "_third_party", name + "_app"],
        entrypoint = ["/usr/bin/python3.11", "-m", module],
        env = dict({
            "PYTHONPATH": "/opt/app:/opt/app/site-packages",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }, **env),
        user = APP_USER,
        workdir = "/opt/app",
        labels = image_labels(module.split(".")[-1], description),
        stamp = STAMP,
        **kwargs
    )

def oci_image_tests(name, image, loader, layers, files, shell = False, python_app = True, **kwargs):
    """Tests of a built image: `<name>_structure_test` (entrypoint, user, labels, `files`
    present, no compilers/package managers/shell, ownership, symlinks, the app layer last,
    the tarball) and `<name>_reproducible_test` (rebuilding `layers`, the image's own,
    gives the same digests).

    Args:
        name: prefix of the test names.
        image: the oci_image.
        loader: its oci_load (for the tarball).
        layers: the image's own layers, in order (oci_layer / py_app_layer targets).
        files: absolute paths that must exist in the image.
        shell: whether the image may contain a shell (Spark's launcher needs bash).
        python_app: whether it is a py_image (its code in the last layer, packages before).
        **kwargs: passed to both tests (size, tags, ...).
    """
    native.filegroup(
        name = name + "_tarball",
        srcs = [loader],
        output_group = "tarball",
        visibility = ["//visibility:public"],  # end-to-end tests run the images
    )
    native.filegroup(name = name + "_config", srcs = [image], output_group = "config")
    native.filegroup(name = name + "_base", srcs = [image], output_group = "base")
    expect = {"files": files, "shell": shell, "python_app": python_app}
    pytest_test(
        name = name + "_structure_test",
        srcs = ["//tools/oci:structure_test.py"],
        data = [image, name + "_tarball"],
        env = {
            "IMAGE_LAYOUT": "$(rootpath %s)" % image,
            "IMAGE_TARBALL": "$(rootpath %s_tarball)" % name,
            "IMAGE_EXPECT": json.encode(expect),
        },
        deps = ["//tools/oci:oci_fs"],
        **kwargs
    )
    specs = []
    for layer in layers:
        native.filegroup(name = layer.lstrip(":") + "_spec", srcs = [layer], output_group = "spec")
        native.filegroup(name = layer.lstrip(":") + "_inputs", srcs = [layer], output_group = "inputs")
        specs.append(layer + "_spec")
    pytest_test(
        name = name + "_reproducible_test",
        srcs = ["//tools/oci:reproducible_test.py"],
        data = [image, name + "_config", name + "_base"] + specs + [s[:-len("_spec")] + "_inputs" for s in specs],
        env = {
            "IMAGE_LAYOUT": "$(rootpath %s)" % image,
            "IMAGE_CONFIG": "$(rootpath %s_config)" % name,
            "IMAGE_BASE": "$(rootpaths %s_base)" % name,
            "LAYER_SPECS": " ".join(["$(rootpath %s)" % spec for spec in specs]),
        },
        deps = [
            "//tools/oci:image_lib",
            "//tools/oci:layer_lib",
        ],
        **kwargs
    )

def oci_push(name, images, **kwargs):
    """`bazel run :<name> -- --repository R --tag T` pushes the image to any OCI registry
    (one image; `--repository-prefix P` pushes each to P/<image name>) with crane, found
    at run time (the toolchain root has it), with credentials from the usual docker or
    podman config, and prints each pushed digest.

    Args:
        name: the push target.
        images: image name -> oci_image, e.g. {"producer": ":image"}.
        **kwargs: passed to the py_binary.
    """
    py_binary(
        name = name,
        srcs = ["//tools/oci/push:push.py"],
        main = "//tools/oci/push:push.py",
        args = ["--image=%s=$(rootpath %s)" % (image_name, image) for image_name, image in images.items()],
        data = images.values(),
        deps = ["//tools/oci/push:push_lib"],
        **kwargs
    )

def py_service_image(
        name,
        binary,
        module,
        description,
        repository,
        files,
        load_target = "load",
        push_target = "push",
        shell = False,
        test_size = "medium",
        extra_layers = [],
        **kwargs):
    """A Python service's image with everything around it, named as rules_oci users expect:
    `name` (py_image), `load_target` (oci_load as localhost/fraud/<repository>:latest), `push_target`
    (oci_push as <repository>; None for none) and `<name>_structure_test` /
    `<name>_reproducible_test` (oci_image_tests).

    Args:
        name: the image target.
        binary: the service's py_binary.
        module: the entry module.
        description: one line for the image's description label.
        repository: the image's name in registries and for `load`, e.g. "alert-sink".
        files: paths the structure test requires, besides Python and the CA bundle.
        load_target: the oci_load target's name.
        push_target: the oci_push target's name, or None.
        shell: whether the image may contain a shell.
        test_size: size of the two tests.
        extra_layers: layers between the base and the Python ones.
        **kwargs: passed to py_image (base, env, exposed_ports, stop_signal, ...).
    """
    py_image(
        name = name,
        binary = binary,
        module = module,
        description = description,
        extra_layers = extra_layers,
        **kwargs
    )
    oci_load(
        name = load_target,
        image = ":" + name,
        repo_tags = ["fraud/%s:latest" % repository],
    )
    if push_target:
        oci_push(
            name = push_target,
            images = {repository: ":" + name},
        )
    oci_image_tests(
        name = name,
        size = test_size,
        files = ["/usr/bin/python3.11", "/etc/ssl/certs/ca-certificates.crt"] + files,
        image = ":" + name,
        layers = extra_layers + [":%s_third_party" % name, ":%s_app" % name],
        loader = ":" + load_target,
        shell = shell,
    )
