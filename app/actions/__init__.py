"""Actions several capabilities take: stopping a server (`stop`), with its intent, its wait
and its audit record. Below the capabilities, above hub/db/directory."""
