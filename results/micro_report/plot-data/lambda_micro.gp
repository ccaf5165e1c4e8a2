# lambda_micro.svg, written by `moebench report` (suite/plot.cpp).
# Rerun from the report folder: gnuplot plot-data/lambda_micro.gp
set encoding utf8
set terminal svg size 640,400 font 'sans-serif,12' noenhanced background '#ffffff'
set output 'lambda_micro.svg'
set datafile separator tab
set border 3 lc rgb '#333333'
set tics nomirror textcolor rgb '#333333'
set title 'λ (micro)'
set xlabel 'training step'
set ylabel 'λ (log scale)'
set logscale y 10
set format y '%.0e'
set grid lc rgb '#e3e3e3'
set key outside below horizontal center Left reverse samplen 2.5 spacing 1.1
set pointsize 0.8
set offsets graph 0, graph 0, graph 0.05, graph 0.05
plot 'plot-data/lambda_micro.0.tsv' using 1:3:4 with filledcurves fc rgb '#009E73' fs transparent solid 0.2 noborder notitle, \
     'plot-data/lambda_micro.1.tsv' using 1:3:4 with filledcurves fc rgb '#D55E00' fs transparent solid 0.2 noborder notitle, \
     'plot-data/lambda_micro.0.tsv' using 1:2 with linespoints lc rgb '#009E73' lw 2 pt 6 pi 38 title 'remoe (3 seeds)', \
     'plot-data/lambda_micro.1.tsv' using 1:2 with linespoints lc rgb '#D55E00' lw 2 pt 7 pi 38 title 'routing_free (model.init=published; 3 seeds)', \
     'plot-data/lambda_micro.2.tsv' using 1:2 with linespoints lc rgb '#D55E00' lw 2 pt 5 pi 38 title 'routing_free (model.init=normal)'
unset output
