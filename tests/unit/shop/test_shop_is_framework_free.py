import subprocess
import sys


def test_the_shop_and_the_services_import_no_pyramid_and_no_container():
    code = (
        "import sys, app.shop, app.services;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'pyramid', 'webob', 'dependency_injector', 'containers', 'hooks'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
