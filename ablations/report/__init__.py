"""Report: markdown, HTML and TeX reports and seaborn figures, built from what analyse computes."""
