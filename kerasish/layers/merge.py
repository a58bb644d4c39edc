"""`keras.layers.merge` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.8): the merge
layers and their functional forms (`concatenate`, `add`, ...), as aliases of
`keras.layers.*`. Keras 1's `Merge` layer / `merge` function are gone."""

from kerasish.utils.keras2_modules import install, layer_aliases

_MERGE_INSTEAD = ("Keras 1's merge was removed in Keras 2.2; use the merge layers (`Add`, `Concatenate`, `Dot`, "
                  "...) or their functions (`add`, `concatenate`, `dot`, ...) in `keras.layers`")

install(
    globals(),
    layer_aliases("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
                  "add", "subtract", "multiply", "average", "maximum", "minimum", "concatenate", "dot"),
    {"Merge": _MERGE_INSTEAD, "merge": _MERGE_INSTEAD},
)
