"""The report: every table, figure and crop of a results folder, in one offline HTML page.

Map (each module one job; results are read only through msnlan.results):

- reading: `collect` (eval/ and runs/ -> the summary and per-image tables, with cross-checks),
  `settings` (the config's report options, checked by the one config schema), `published`
  (the cited numbers), `provenance_info` (what ran where)
- the table model: `tables` (Table, Column, Row, Cell, bold/underline ranking, and its HTML,
  LaTeX and Markdown renderers)
- the tables: `main_table` (one column per registered metric), `ablation` (descriptions,
  component marks from the block registry, paired bootstrap differences), `complexity_table`
- statistics: `stats` (paired bootstrap)
- figures: `plots` (PSNR vs MACs, training curves), `crops` (choosing and measuring crops),
  `visuals` (the visual comparison)
- `render`: builds everything into report/index.html (templates in msnlan/templates)
"""
