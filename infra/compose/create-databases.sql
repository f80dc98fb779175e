create database orders;
create database inventory;
create database payments;
create database registry;
create database views;
