import subprocess
import sys


def test_importing_the_core_imports_no_pyramid_webob_or_container():
    code = (
        "import sys, app.deferred_task;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pyramid', 'webob', 'dependency_injector', 'containers', 'hooks'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_test_capture_is_part_of_the_framework_free_core():
    code = (
        "import sys, app.deferred_task.testing;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pyramid', 'webob', 'dependency_injector', 'containers', 'hooks', 'pytest', 'prometheus_client'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
