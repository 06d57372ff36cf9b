# Builds writeText and writeScript paths: one file holding the given text.
cp "$textPath" "$out"
if [ -n "$executable" ]; then
    chmod 555 "$out"
fi
