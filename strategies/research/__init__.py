"""Research tools that say whether a strategy's backtest can be trusted: pure Python, numpy, pandas
and scipy, no Django.

* ``strategies.research.overfitting``: the deflated Sharpe ratio of a sweep's best set
  (Bailey & López de Prado 2014), the probability of backtest overfitting by combinatorially
  symmetric cross-validation (Bailey, Borwein, López de Prado & Zhu 2017), and their plain-Korean
  explanation for the sweep page.
* ``strategies.research.lookahead``: the look-ahead check (signals on history cut at a date must
  equal the signals on the full history at that date).
"""
