# Builds a pythonDeps path: the wheels of a requirements file in lib/pythonX.Y/site-packages.
# shellcheck source=common.sh
. "$common"
check_python
check_pip

sitePackages="$out/lib/python$pythonVersion/site-packages"
pip_install "$sitePackages" "$requirements"
# Console scripts land in the target's bin/ with a bare interpreter line that lacks the
# search path; sites run modules instead (python -m gunicorn, python -m django).
rm -rf "${sitePackages:?}/bin"
compile_python "$sitePackages"
