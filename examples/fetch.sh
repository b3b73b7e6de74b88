#!/bin/sh
# fetch.sh: fetch needs a server: the same demo as examples/httpd.sh.
exec sh "$(dirname "$0")/httpd.sh" "$@"
